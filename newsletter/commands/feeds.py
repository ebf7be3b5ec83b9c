"""`newsletter feeds …`: RSS and Atom feeds polled for a list's stories."""

from __future__ import annotations

from typing import Any

import click

from newsletter.commands.common import emit_json, handled, perform
from newsletter.sources import actions


@click.group(name="feeds")
def feeds_group() -> None:
    """Feeds polled by beat (every FEED_POLL_MINUTES): add, list, remove, poll now."""


def _line(record: dict[str, Any]) -> str:
    polled = (record["last_polled_at"] or "never polled")[:16]
    status = record["last_status"] or "-"
    return f"{record['id']}  {record['list']}  {record['url']}  {polled}  {status}"


@feeds_group.command("add")
@click.argument("url")
@click.option("--list", "list_slug", required=True, help="The list its entries are for.")
@click.option("--json", "as_json", is_flag=True)
@handled
def feeds_add(url: str, list_slug: str, as_json: bool) -> None:
    """Register a feed; its new entries become the list's stories at every poll."""
    record = perform(actions.add_feed, url, list_slug)
    if as_json:
        emit_json(record)
        return
    click.echo(f"added feed {record['id']} for {record['list']}: {record['url']}")


@feeds_group.command("list")
@click.option("--list", "list_slug", default=None, help="Only this list's feeds.")
@click.option("--json", "as_json", is_flag=True)
@handled
def feeds_list(list_slug: str | None, as_json: bool) -> None:
    """Each feed with when it was last polled and how that went."""
    records = perform(actions.list_feeds, list_slug)
    if as_json:
        emit_json(records)
        return
    for record in records:
        click.echo(_line(record))


@feeds_group.command("remove")
@click.argument("feed_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def feeds_remove(feed_id: int, as_json: bool) -> None:
    """Stop polling a feed; the stories it brought stay."""
    record = perform(actions.remove_feed, feed_id)
    if as_json:
        emit_json(record)
        return
    click.echo(f"removed feed {record['id']} ({record['list']}): {record['url']}")


@feeds_group.command("poll")
@click.option("--json", "as_json", is_flag=True)
@handled
def feeds_poll(as_json: bool) -> None:
    """Poll every feed now, as beat does."""
    outcomes = perform(actions.poll)
    if as_json:
        emit_json(outcomes)
        return
    for outcome in outcomes:
        click.echo(
            f"feed {outcome['id']} ({outcome['list']}) {outcome['url']}: {outcome['status']}"
        )
    click.echo(f"{sum(o['added'] for o in outcomes)} stories added from {len(outcomes)} feeds")
