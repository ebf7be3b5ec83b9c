"""Every schema change is a migration that runs on SQLite and PostgreSQL and matches the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from newsletter.db import engine_for
from newsletter.migrate import alembic_config, downgrade, upgrade
from newsletter.models import Base


def test_there_is_one_head():
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads


def test_migrations_build_exactly_the_models(database: str):
    engine = engine_for(database)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_to_nothing_and_up_again(database: str):
    downgrade(database, "base")
    assert set(inspect(engine_for(database)).get_table_names()) <= {"alembic_version"}
    upgrade(database)
    assert "deliveries" in inspect(engine_for(database)).get_table_names()


def test_the_ledger_keeps_its_rows_and_a_reader_once_per_send_across_0011(database: str):
    """0011 swaps the ledger's reader indexes: rows written before it stay, a reader is
    still refused twice in one send (the ledger's ON CONFLICT still finds its key), and
    the downgrade gives the old key back with the rows."""
    engine = engine_for(database)
    downgrade(database, "0010_audience")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO lists (id, slug, name, description, timezone, created_at, welcome,"
                " track_clicks, track_opens, form_fields)"
                " VALUES (1, 'l', 'L', '', 'UTC', CURRENT_TIMESTAMP, false, false, false, '[]')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO digests (id, list_id, subject, status, html, text, story_ids,"
                " created_at, ledger_complete) VALUES (1, 1, 's', 'sending', '', '', '[]',"
                " CURRENT_TIMESTAMP, true)"
            )
        )
        for sid in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO subscribers (id, email, name, status, bounce_score, created_at,"
                    " attributes) VALUES (:id, :email, '', 'active', 0, CURRENT_TIMESTAMP, '{}')"
                ),
                {"id": sid, "email": f"r{sid}@example.org"},
            )
        conn.execute(
            text(
                "INSERT INTO deliveries (id, digest_id, subscriber_id, status, attempts, variant)"
                " VALUES (10, 1, 1, 'sent', 1, 0)"
            )
        )
    upgrade(database)

    def deliveries() -> list[tuple[int, int, str]]:
        with engine.connect() as conn:
            return [
                (r[0], r[1], r[2])
                for r in conn.execute(
                    text("SELECT id, subscriber_id, status FROM deliveries ORDER BY subscriber_id")
                )
            ]

    assert deliveries() == [(10, 1, "sent")]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO deliveries (digest_id, subscriber_id, status, attempts, variant)"
                " VALUES (1, 1, 'queued', 0, 0)"
            )
        )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO deliveries (digest_id, subscriber_id, status, attempts, variant)"
                " SELECT 1, id, 'queued', 0, 0 FROM subscribers WHERE true"
                " ON CONFLICT (digest_id, subscriber_id) DO NOTHING"
            )
        )
    assert [(sid, status) for _, sid, status in deliveries()] == [(1, "sent"), (2, "queued")]
    downgrade(database, "0010_audience")
    assert [(sid, status) for _, sid, status in deliveries()] == [(1, "sent"), (2, "queued")]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO deliveries (digest_id, subscriber_id, status, attempts, variant)"
                " VALUES (1, 2, 'queued', 0, 0)"
            )
        )
    upgrade(database)
