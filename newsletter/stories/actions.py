"""Operator actions on stories: one function each, called by the CLI and the admin API."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.stories.drafts import StoryDraft, StoryInputError
from newsletter.stories.feeds import import_feed as read_and_store_feed
from newsletter.stories.fetch import fetch_story, http_client, is_url
from newsletter.stories.images import attach_images
from newsletter.stories.parse import parse_story_bytes, parse_story_file
from newsletter.stories.store import (
    StoreReport,
    find_list_or_none,
    store_stories,
    story_record,
    story_records,
)


def _report(
    session: Session, report: StoreReport, settings: Settings, list_slug: str | None
) -> dict[str, Any]:
    """The stories added (their lead images fetched and resized now), the ones already
    stored, and a warning per image that could not be had."""
    warnings = attach_images(session, settings, report.added)
    return {
        "added": [story_record(s, settings.base_url, list_slug) for s in report.added],
        "skipped": list(report.skipped),
        "warnings": warnings,
    }


@audit.audited("stories.add", lambda inputs, list_slug=None: f"{len(inputs)} file(s) or page(s)")
def add_files(
    session: Session,
    settings: Settings,
    inputs: Sequence[Path | str],
    list_slug: str | None = None,
) -> Done[dict[str, Any]]:
    """Story files and web pages, mixed: the order given is the digest's order (the
    first leads). Every file is read and every page fetched and extracted before any is
    stored: one bad input stores nothing. Then one store_stories, in the order given."""
    mailing_list = find_list_or_none(session, list_slug)  # an unknown list fetches nothing
    drafts: list[StoryDraft] = []
    with ExitStack() as stack:
        client = None
        for item in inputs:
            if isinstance(item, str) and is_url(item):
                client = client or stack.enter_context(
                    http_client(private=settings.may_fetch_private)
                )
                drafts.append(fetch_story(client, item))
            else:
                drafts.extend(parse_story_file(Path(item)))
    report = store_stories(session, drafts, mailing_list)
    return Done(_report(session, report, settings, list_slug))


def add_urls(
    session: Session, settings: Settings, urls: Sequence[str], list_slug: str | None = None
) -> Done[dict[str, Any]]:
    """Web pages only (the admin API: a request never names a file on this machine)."""
    for url in urls:
        if not is_url(url):
            raise StoryInputError(url[:200], "only http:// and https:// addresses can be fetched")
    return add_files(session, settings, list(urls), list_slug)


@audit.audited("stories.add", lambda data, fmt, list_slug=None: f"{len(data)} bytes")
def add_body(
    session: Session,
    settings: Settings,
    data: bytes,
    fmt: str | None,
    list_slug: str | None = None,
) -> Done[dict[str, Any]]:
    """A story sent as a request body (JSON, Markdown or plain text)."""
    drafts = parse_story_bytes(data, "request body", fmt)
    mailing_list = find_list_or_none(session, list_slug)
    report = store_stories(session, drafts, mailing_list)
    return Done(_report(session, report, settings, list_slug))


@audit.audited("stories.import_feed", lambda url_or_file, list_slug=None: url_or_file)
def import_feed(
    session: Session, settings: Settings, url_or_file: str, list_slug: str | None = None
) -> Done[dict[str, Any]]:
    """An RSS or Atom feed's entries, skipping those already stored."""
    result = read_and_store_feed(session, url_or_file, list_slug)
    value = _report(session, result.report, settings, list_slug)
    return Done({"feed": result.title, "entries": result.entries, **value})


def list_stories(
    session: Session, settings: Settings, list_slug: str | None = None
) -> Done[list[dict[str, Any]]]:
    return Done(story_records(session, settings.base_url, list_slug))
