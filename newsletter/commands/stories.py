"""`newsletter stories …`: content in."""

from __future__ import annotations

import click

from newsletter.commands.common import emit_json, handled, perform
from newsletter.stories import actions


@click.group()
def stories() -> None:
    """Stories: add files, import feeds, list."""


@stories.command("add")
@click.argument("inputs", metavar="FILE_OR_URL...", nargs=-1, required=True)
@click.option("--list", "list_slug", default=None, help="Only for this list (default: all).")
@click.option("--json", "as_json", is_flag=True)
@handled
def stories_add(inputs: tuple[str, ...], list_slug: str | None, as_json: bool) -> None:
    """Add stories from files (plain text, Markdown with front matter, JSON) and web
    pages (http:// or https:// addresses: the article is fetched and extracted).

    The order given is the digest's order: the first leads. Every file is read and every
    page fetched before any is stored: one bad input stores nothing.
    """
    report = perform(actions.add_files, list(inputs), list_slug)
    if as_json:
        emit_json(report)
        return
    for record in report["added"]:
        click.echo(f"added {record['slug']}: {record['title']}")
    for source in report["skipped"]:
        click.echo(f"skipped {source}: already stored")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{len(report['added'])} added, {len(report['skipped'])} already stored")


@stories.command("import-feed")
@click.argument("url_or_file")
@click.option("--list", "list_slug", default=None, help="Only for this list (default: all).")
@click.option("--json", "as_json", is_flag=True)
@handled
def stories_import_feed(url_or_file: str, list_slug: str | None, as_json: bool) -> None:
    """Import the entries of an RSS or Atom feed, skipping those already stored."""
    report = perform(actions.import_feed, url_or_file, list_slug)
    if as_json:
        emit_json(report)
        return
    for record in report["added"]:
        click.echo(f"added {record['slug']}")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"{report['feed']}: {len(report['added'])} added, {len(report['skipped'])} already "
        f"stored of {report['entries']} entries"
    )


@stories.command("list")
@click.option("--list", "list_slug", default=None)
@click.option("--json", "as_json", is_flag=True)
@handled
def stories_list(list_slug: str | None, as_json: bool) -> None:
    """Newest first."""
    rows = perform(actions.list_stories, list_slug)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['published_at'][:16]}  {r['slug']}  {r['title']}")
