"""A list's readers as CSV, written as it is read: keyset pages of a thousand, so a
million rows never sit in memory, each page in its own short transaction.

Exporting is personal data leaving the system: `begin_export` is the operator action
(it checks the list and writes the audit entry); `csv_chunks` is what the face streams.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.models import Subscriber, Subscription
from newsletter.subscriptions.lists import find_list

CHUNK = 1000
HEADER = ("email", "name", "status", "confirmed_at")
# A cell a spreadsheet would run as a formula (CSV injection) is kept as text.
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def begin_export(session: Session, settings: Settings, list_slug: str) -> Done[int]:
    """The list's id, once the export is on record (who, which list)."""
    mlist = find_list(session, list_slug)
    audit.record(session, "subscribers.export", f"list {mlist.slug}")
    return Done(mlist.id)


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA) else value


def csv_chunks(
    sessions: Callable[[], AbstractContextManager[Session]], list_id: int
) -> Iterator[str]:
    """The CSV text, a page of rows at a time, each page read in a session of its own."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(HEADER)
    last = 0
    while True:
        with sessions() as session:
            page = session.execute(
                select(
                    Subscription.subscriber_id,
                    Subscriber.email,
                    Subscriber.name,
                    Subscription.status,
                    Subscription.confirmed_at,
                )
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .where(Subscription.list_id == list_id, Subscription.subscriber_id > last)
                .order_by(Subscription.subscriber_id)
                .limit(CHUNK)
            ).all()
        for _, email, name, status, confirmed_at in page:
            confirmed = confirmed_at.isoformat(timespec="seconds") if confirmed_at else ""
            out.writerow((email, _cell(name or ""), status, confirmed))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(page) < CHUNK:
            return
        last = page[-1][0]
