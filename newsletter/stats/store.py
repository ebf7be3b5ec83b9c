"""StatsSnapshot rows: one JSON document per name, written whole by a refresh.

A write is an upsert (INSERT … ON CONFLICT DO UPDATE on SQLite and PostgreSQL alike) so
beat's refresh, `newsletter stats refresh` and a first page view may run at once without
one of them failing on the primary key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.models import StatsSnapshot, utcnow


def write(session: Session, name: str, data: Any, at: datetime | None = None) -> None:
    at = at or utcnow()
    values = {"name": name, "data": data, "refreshed_at": at}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(StatsSnapshot).values(values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[StatsSnapshot.name],
            set_={"data": statement.excluded.data, "refreshed_at": statement.excluded.refreshed_at},
        )
    )


def read(session: Session, name: str) -> tuple[Any, datetime] | None:
    """(data, refreshed_at), or None when nothing was ever written under `name`."""
    row = session.execute(
        select(StatsSnapshot.data, StatsSnapshot.refreshed_at).where(StatsSnapshot.name == name)
    ).first()
    return (row[0], row[1]) if row is not None else None
