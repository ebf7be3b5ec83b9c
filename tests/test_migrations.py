"""Every schema change is a migration that runs on SQLite and PostgreSQL and matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

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
