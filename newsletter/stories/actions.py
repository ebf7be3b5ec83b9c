"""Operator actions on stories: one function each, called by the CLI and the admin API."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.stories.feeds import import_feed as read_and_store_feed
from newsletter.stories.parse import parse_story_bytes
from newsletter.stories.store import (
    StoreReport,
    add_story_files,
    find_list_or_none,
    store_stories,
    story_record,
    story_records,
)


def _report(report: StoreReport, settings: Settings, list_slug: str | None) -> dict[str, Any]:
    return {
        "added": [story_record(s, settings.base_url, list_slug) for s in report.added],
        "skipped": list(report.skipped),
    }


def add_files(
    session: Session, settings: Settings, paths: Sequence[Path], list_slug: str | None = None
) -> Done[dict[str, Any]]:
    """Every file is checked before any is stored: one bad file stores nothing."""
    return Done(_report(add_story_files(session, paths, list_slug), settings, list_slug))


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
    return Done(_report(store_stories(session, drafts, mailing_list), settings, list_slug))


def import_feed(
    session: Session, settings: Settings, url_or_file: str, list_slug: str | None = None
) -> Done[dict[str, Any]]:
    """An RSS or Atom feed's entries, skipping those already stored."""
    result = read_and_store_feed(session, url_or_file, list_slug)
    value = _report(result.report, settings, list_slug)
    return Done({"feed": result.title, "entries": result.entries, **value})


def list_stories(
    session: Session, settings: Settings, list_slug: str | None = None
) -> Done[list[dict[str, Any]]]:
    return Done(story_records(session, settings.base_url, list_slug))
