"""Polling the registered feeds: conditional GET, new entries stored, one feed's failure
kept to itself.

Every feed is fetched first, a few at a time, with no write pending (a slow or dead site
costs the poll time, never a lock other writers wait on), then the answers are stored in
one short write. A feed that sent an ETag or a Last-Modified date is asked again with
If-None-Match / If-Modified-Since: a 304 costs the site and us nothing. A 200 is parsed
with stories/feeds.parse_feed and its entries go through store_stories, which skips
every entry whose guid or link the store holds already: an entry is never stored twice,
whether the site re-sends the whole feed or a second poll overlaps. The validators are
kept only once the feed's entries are stored, so a feed that failed is fetched in full
next time.

Each feed is written in its own savepoint: a feed that cannot be fetched, does not
parse or whose entries cannot be stored records its error in `last_status` and the
others are polled as usual.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import FeedSource, MailingList, utcnow
from newsletter.stories.drafts import StoryInputError
from newsletter.stories.feeds import MAX_FEED_BYTES, parse_feed
from newsletter.stories.fetch import Fetched, fetch, http_client
from newsletter.stories.images import attach_images
from newsletter.stories.store import store_stories

log = logging.getLogger(__name__)
FETCHERS = 8  # feeds fetched at once: one slow site does not hold up the others
MAX_STATUS = 500
MAX_ETAG = 500
MAX_LAST_MODIFIED = 100


@dataclass(frozen=True)
class FeedPoll:
    """One feed's outcome: "not modified", "N new of M entries" or "error: …"."""

    feed_id: int
    list: str
    url: str
    status: str
    added: int = 0

    def record(self) -> dict[str, Any]:
        return {
            "id": self.feed_id,
            "list": self.list,
            "url": self.url,
            "status": self.status,
            "added": self.added,
        }


def conditional_headers(source: FeedSource) -> dict[str, str]:
    """What the feed told us last time, sent back so an unchanged feed answers 304."""
    headers = {
        "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"
    }
    if source.etag:
        headers["If-None-Match"] = source.etag
    if source.last_modified:
        headers["If-Modified-Since"] = source.last_modified
    return headers


def poll_feeds(
    session: Session, settings: Settings, *, now: datetime | None = None
) -> list[FeedPoll]:
    """Poll every registered feed once; flushes, the caller commits."""
    rows = session.execute(
        select(FeedSource, MailingList)
        .join(MailingList, FeedSource.list_id == MailingList.id)
        .order_by(FeedSource.id)
    ).all()
    if not rows:
        return []
    # What each request needs, read here: the threads touch no ORM object.
    asks = [(source.id, source.url, conditional_headers(source)) for source, _ in rows]
    fetchers = ThreadPoolExecutor(min(FETCHERS, len(asks)))
    with http_client(private=settings.may_fetch_private) as client, fetchers as pool:
        answers = list(pool.map(lambda ask: _get(client, *ask), asks))
    now = now or utcnow()
    outcomes = [
        _store(session, settings, source, mlist, answer, now)
        for (source, mlist), answer in zip(rows, answers, strict=True)
    ]
    session.flush()
    for outcome in outcomes:
        log.info("feed %s (%s) %s: %s", outcome.feed_id, outcome.list, outcome.url, outcome.status)
    return outcomes


def _get(client: httpx.Client, feed_id: int, url: str, headers: dict[str, str]) -> Fetched | str:
    """The feed's answer, or why there is none (one line)."""
    try:
        return fetch(client, url, headers=headers, max_bytes=MAX_FEED_BYTES)
    except StoryInputError as exc:
        return _problem(exc, url)
    except Exception as exc:  # noqa: BLE001 - one feed's surprise must not stop the others
        log.exception("feed %s: fetching %s failed", feed_id, url)
        return f"could not be fetched ({exc.__class__.__name__})"


def _problem(exc: StoryInputError, url: str) -> str:
    """The message without the feed's URL in front: the record names the feed already."""
    return _problem_text(exc.message, url)


def _problem_text(message: str, url: str) -> str:
    return message.removeprefix(url).lstrip(": ") or message


def _store(
    session: Session,
    settings: Settings,
    source: FeedSource,
    mlist: MailingList,
    answer: Fetched | str,
    now: datetime,
) -> FeedPoll:
    feed_id, url, slug = source.id, source.url, mlist.slug
    added = 0
    try:
        with session.begin_nested():
            if isinstance(answer, str):
                status = f"error: {answer}"
            elif answer.status == 304:
                status = "not modified"
            else:
                bad: list[str] = []
                _, drafts = parse_feed(answer.body, url, bad)
                report = store_stories(session, drafts, mlist, now=now)
                added = len(report.added)
                skipped_images = attach_images(session, settings, report.added)
                source.etag = _kept(answer.headers.get("etag"), MAX_ETAG)
                source.last_modified = _kept(answer.headers.get("last-modified"), MAX_LAST_MODIFIED)
                status = f"{added} new of {len(drafts)} entries"
                if bad:
                    status += f"; {len(bad)} skipped ({_problem_text(bad[0], url)})"
                if skipped_images:
                    status += f"; {len(skipped_images)} images skipped ({skipped_images[0]})"
            source.last_status = status[:MAX_STATUS]
            source.last_polled_at = now
    except StoryInputError as exc:
        added, status = 0, f"error: {_problem(exc, url)}"
    except IntegrityError:
        # Another poll stored the same entries a moment ago: nothing is lost, next time
        # they are known.
        added, status = 0, "error: entries stored by another poll meanwhile; again next time"
    except Exception as exc:  # noqa: BLE001 - one feed's surprise must not stop the others
        log.exception("feed %s: storing %s failed", feed_id, url)
        added, status = 0, f"error: {exc.__class__.__name__}"
    else:
        return FeedPoll(feed_id, slug, url, status, added)
    # The savepoint was rolled back: the error is recorded outside it.
    source.last_status = status[:MAX_STATUS]
    source.last_polled_at = now
    return FeedPoll(feed_id, slug, url, status, added)


def _kept(value: str | None, limit: int) -> str | None:
    """A validator too long for its column is not kept: cut, it would never match."""
    if not value or len(value) > limit:
        return None
    return value
