"""`newsletter stories …` and `newsletter digest preview`: content in, digest out.

The `digest` group is exported so the sending commands (`digest test`, `digest send`)
can join it from their own module.
"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands.common import InputError, emit_json, handled, settings

PREVIEW_VALUES_EMAIL = "reader@example.com"


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
    from newsletter.stories import add_story_files, story_record

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
    from newsletter.feeds import import_feed

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
    from newsletter.stories import story_records

    with session_scope() as session:
        rows = story_records(session, settings().base_url, list_slug)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['published_at'][:16]}  {r['slug']}  {r['title']}")


@click.group()
def digest() -> None:
    """Digests: preview (and, from the sending module, test and send)."""


@digest.command("preview")
@click.option("--list", "list_slug", required=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="HTML file to write (default: <list>-preview.html); the text goes beside it as .txt.",
)
@handled
def digest_preview(list_slug: str, out: Path | None) -> None:
    """Render the next digest without storing it; it uses no stories up."""
    from newsletter import placeholders
    from newsletter.composer import GMAIL_CLIP, personalise, preview_digest
    from newsletter.db import session_scope
    from newsletter.subscriptions import find_list

    s = settings()
    with session_scope() as session:
        mailing_list = find_list(session, list_slug)
        composed = preview_digest(session, s, mailing_list)
    if composed is None:
        click.echo(f"{list_slug}: no new stories since the previous digest; no digest to preview")
        return
    values = {
        placeholders.NAME: "",
        placeholders.EMAIL: PREVIEW_VALUES_EMAIL,
        placeholders.UNSUBSCRIBE_URL: f"{s.base_url}/unsubscribe/preview",
    }
    html, text = personalise(composed.html, composed.text, values)
    out = out or Path(f"{list_slug}-preview.html")
    text_out = out.with_suffix(".txt")
    try:
        out.write_text(html, encoding="utf-8")
        text_out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror})") from None
    click.echo(f"subject: {composed.subject}")
    click.echo(f"stories: {len(composed.story_ids)} ({composed.shortened} shortened, "
               f"{composed.omitted} left for the archive)")  # fmt: skip
    click.echo(f"html: {composed.html_bytes:,} bytes (Gmail clips at {GMAIL_CLIP:,}) -> {out}")
    click.echo(f"text: {composed.text_bytes:,} bytes -> {text_out}")
