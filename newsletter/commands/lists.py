"""`newsletter lists …`: mailing lists."""

from __future__ import annotations

import click

from newsletter.commands.common import emit_json, handled


@click.group(name="lists")
def lists_group() -> None:
    """Mailing lists."""


@lists_group.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--schedule", default=None, help="Cron expression, e.g. '0 7 * * *'.")
@click.option("--timezone", default="UTC", show_default=True)
@handled
def lists_create(slug: str, name: str, schedule: str | None, timezone: str) -> None:
    from newsletter.db import session_scope
    from newsletter.subscriptions.lists import create_list

    with session_scope() as session:
        m = create_list(session, slug, name, schedule, timezone)
        click.echo(f"created list {m.slug}")


@lists_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@handled
def lists_list(as_json: bool) -> None:
    from newsletter.db import session_scope
    from newsletter.subscriptions.lists import list_records

    with session_scope() as session:
        rows = list_records(session)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        sched = f"  {r['schedule']} ({r['timezone']})" if r["schedule"] else ""
        click.echo(f"{r['slug']}\t{r['name']}{sched}")
