"""Operator actions on feed sources: one function each, called by the CLI and the API.

Registering a feed fetches nothing: beat polls it within FEED_POLL_MINUTES, and
`newsletter feeds poll` does so at once; `feeds list` shows how its last poll went.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.errors import Conflict, InvalidInput, NotFound
from newsletter.models import FeedSource, MailingList
from newsletter.sources.poll import poll_feeds
from newsletter.stories.drafts import StoryInputError
from newsletter.stories.fetch import check_url
from newsletter.subscriptions.lists import SLUG, find_list

MAX_ID = 2**31 - 1  # ids are PostgreSQL integers


def _find_list(session: Session, slug: str | None) -> MailingList:
    """find_list, with a name no list can have (control characters…) simply not found."""
    if slug and not SLUG.match(slug.strip()):
        raise NotFound("list", f"There is no newsletter called {slug[:64]!r}.")
    return find_list(session, slug)


def feed_record(source: FeedSource, list_slug: str) -> dict[str, Any]:
    return {
        "id": source.id,
        "list": list_slug,
        "url": source.url,
        "etag": source.etag,
        "last_modified": source.last_modified,
        "last_polled_at": source.last_polled_at.isoformat() if source.last_polled_at else None,
        "last_status": source.last_status,
        "created_at": source.created_at.isoformat() if source.created_at else None,
    }


@audit.audited("feeds.add", lambda url, list_slug: url)
def add_feed(
    session: Session, settings: Settings, url: str, list_slug: str | None
) -> Done[dict[str, Any]]:
    """Register an RSS or Atom feed for a list; the same feed twice for one list is a
    conflict."""
    try:
        url = check_url(url)
    except StoryInputError as exc:
        raise InvalidInput("url", exc.message) from None
    mlist = _find_list(session, list_slug)
    known = session.scalar(
        select(FeedSource.id).where(FeedSource.list_id == mlist.id, FeedSource.url == url)
    )
    if known is not None:
        raise Conflict("url", f"List {mlist.slug!r} has this feed already (feed {known}): {url}")
    source = FeedSource(list_id=mlist.id, url=url)
    session.add(source)
    session.flush()
    return Done(feed_record(source, mlist.slug))


def list_feeds(
    session: Session, settings: Settings, list_slug: str | None = None
) -> Done[list[dict[str, Any]]]:
    query = select(FeedSource, MailingList.slug).join(
        MailingList, FeedSource.list_id == MailingList.id
    )
    if list_slug:
        query = query.where(FeedSource.list_id == _find_list(session, list_slug).id)
    rows = session.execute(query.order_by(FeedSource.id))
    return Done([feed_record(source, slug) for source, slug in rows])


@audit.audited("feeds.remove", lambda feed_id: f"feed {feed_id}")
def remove_feed(session: Session, settings: Settings, feed_id: int) -> Done[dict[str, Any]]:
    """The feed is no longer polled; the stories it brought stay."""
    if not 1 <= feed_id <= MAX_ID:
        raise NotFound("id", f"There is no feed {feed_id}.")
    found = session.execute(
        select(FeedSource, MailingList.slug)
        .join(MailingList, FeedSource.list_id == MailingList.id)
        .where(FeedSource.id == feed_id)
    ).first()
    if found is None:
        raise NotFound("id", f"There is no feed {feed_id}.")
    source, slug = found
    record = feed_record(source, slug)
    session.delete(source)
    session.flush()
    return Done({**record, "removed": True})


def poll(session: Session, settings: Settings) -> Done[list[dict[str, Any]]]:
    """Poll every registered feed now, as beat does."""
    return Done([outcome.record() for outcome in poll_feeds(session, settings)])
