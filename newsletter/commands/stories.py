"""`newsletter stories …`: content in."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands.common import emit_json, handled, settings


@click.group()
def stories() -> None:
    """Stories: add files, import feeds, list."""


@stories.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--list", "list_slug", default=None, help="Only for this list (default: all).")
@click.option("--json", "as_json", is_flag=True)
@handled
def stories_add(files: tuple[Path, ...], list_slug: str | None, as_json: bool) -> None:
    """Add stories from plain text, Markdown with front matter, or JSON files.

    Every file is checked before any is stored: one bad file stores nothing.
    """
    from newsletter.db import session_scope
    from newsletter.stories.store import add_story_files, story_record

    base = settings().base_url
    with session_scope() as session:
        report = add_story_files(session, list(files), list_slug)
        added = [story_record(s, base, list_slug) for s in report.added]
    if as_json:
        emit_json({"added": added, "skipped": report.skipped})
        return
    for record in added:
        click.echo(f"added {record['slug']}: {record['title']}")
    for source in report.skipped:
        click.echo(f"skipped {source}: already stored")
    click.echo(f"{len(added)} added, {len(report.skipped)} already stored")


@stories.command("import-feed")
@click.argument("url_or_file")
@click.option("--list", "list_slug", default=None, help="Only for this list (default: all).")
@handled
def stories_import_feed(url_or_file: str, list_slug: str | None) -> None:
    """Import the entries of an RSS or Atom feed, skipping those already stored."""
    from newsletter.db import session_scope
    from newsletter.stories.feeds import import_feed

    with session_scope() as session:
        result = import_feed(session, url_or_file, list_slug)
        slugs = [s.slug for s in result.report.added]
    for slug in slugs:
        click.echo(f"added {slug}")
    click.echo(
        f"{result.title}: {len(slugs)} added, {len(result.report.skipped)} already stored "
        f"of {result.entries} entries"
    )


@stories.command("list")
@click.option("--list", "list_slug", default=None)
@click.option("--json", "as_json", is_flag=True)
@handled
def stories_list(list_slug: str | None, as_json: bool) -> None:
    """Newest first."""
    from newsletter.db import session_scope
    from newsletter.stories.store import story_records

    with session_scope() as session:
        rows = story_records(session, settings().base_url, list_slug)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['published_at'][:16]}  {r['slug']}  {r['title']}")
