"""`newsletter stats refresh`: count what the console shows now, without waiting for beat."""

from __future__ import annotations

import time

import click

from newsletter.commands.common import emit_json, handled, settings


@click.group(name="stats")
def stats_group() -> None:
    """The console's maintained counts (beat refreshes them every STATS_REFRESH_SECONDS)."""


@stats_group.command("refresh")
@click.option("--json", "as_json", is_flag=True)
@handled
def refresh_cmd(as_json: bool) -> None:
    """Count subscribers per list, the 30-day growth, bounces and policy blocks now."""
    from newsletter.db import session_scope
    from newsletter.stats.aggregates import refresh

    settings()
    started = time.monotonic()
    with session_scope() as session:
        names = refresh(session)
    took = round(time.monotonic() - started, 3)
    if as_json:
        emit_json({"refreshed": names, "seconds": took})
        return
    click.echo(f"refreshed {', '.join(names)} in {took:.2f} s")
