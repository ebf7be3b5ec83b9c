"""`newsletter db upgrade`: the schema."""

from __future__ import annotations

import click

from newsletter.commands.common import handled


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@handled
def db_upgrade(revision: str) -> None:
    """Apply the migrations (SQLite or PostgreSQL)."""
    from newsletter.migrate import upgrade

    upgrade(revision=revision)
    click.echo(f"database at {revision}")
