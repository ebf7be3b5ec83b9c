"""`newsletter segments …`: saved filters over a list's readers (newsletter/segments/).

The language, in short (the full grammar is in newsletter/segments/language.py):

    attributes.city = "Kyiv" and attributes.age >= 30
    attributes.plan in ("pro", "team") or not attributes.company exists
    status = "confirmed"   language = "uk"   frequency = "weekly"   timezone = "Europe/Kyiv"
    signed_up >= 30 days ago    last_delivery < 2026-01-31    last_click > -14d
    in_list "other-list"        attributes.city contains "ky"

A date is a whole UTC day (2026-01-31); `30 days ago` (or `-30d`, `2 weeks ago`,
`12 hours ago`) is that instant. A send only ever reaches confirmed, active readers.
"""

from __future__ import annotations

from typing import Any

import click

from newsletter.commands.common import emit_json, handled, perform
from newsletter.segments import actions


@click.group(name="segments")
def segments_group() -> None:
    """Segments: saved filters over a list's readers, with a live count."""


def _show(record: dict[str, Any], verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(record)
    else:
        click.echo(f"{verb} segment {record['slug']} of list {record['list']}: {record['where']}")


@segments_group.command("create")
@click.argument("slug")
@click.option("--list", "list_slug", required=True, help="The list whose readers it filters.")
@click.option("--where", "where", required=True, help='e.g. attributes.city = "Kyiv"')
@click.option("--name", default=None, help="A name for people (default: the slug).")
@click.option("--json", "as_json", is_flag=True)
@handled
def segments_create(slug: str, list_slug: str, where: str, name: str | None, as_json: bool) -> None:
    """Save a segment; a malformed expression is refused with its column."""
    _show(perform(actions.create, slug, list_slug, where, name), "created", as_json)


@segments_group.command("update")
@click.argument("slug")
@click.option("--where", "where", default=None)
@click.option("--name", default=None)
@click.option("--json", "as_json", is_flag=True)
@handled
def segments_update(slug: str, where: str | None, name: str | None, as_json: bool) -> None:
    """Change a segment's expression or name (its list stays)."""
    _show(perform(actions.update, slug, where, name), "updated", as_json)


@segments_group.command("delete")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True)
@handled
def segments_delete(slug: str, as_json: bool) -> None:
    """Remove a segment (past sends to it keep their ledger)."""
    _show(perform(actions.delete, slug), "deleted", as_json)


@segments_group.command("list")
@click.option("--list", "list_slug", default=None, help="Only this list's segments.")
@click.option("--count", "with_counts", is_flag=True, help="Count each segment's readers too.")
@click.option("--json", "as_json", is_flag=True)
@handled
def segments_list(list_slug: str | None, with_counts: bool, as_json: bool) -> None:
    """Segments by slug, with their list and expression."""
    rows = perform(actions.list_segments, list_slug, with_counts)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        count = f"\t{r['count']}" if "count" in r else ""
        click.echo(f"{r['slug']}\t{r['list']}{count}\t{r['where']}")


@segments_group.command("count")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True)
@handled
def segments_count(slug: str, as_json: bool) -> None:
    """How many confirmed, active readers of the list the segment selects now."""
    record = perform(actions.get_count, slug)
    if as_json:
        emit_json(record)
    else:
        click.echo(f"{record['count']}")
