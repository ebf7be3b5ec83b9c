"""Operator actions on segments: one function each, called by the CLI, the API and the
console. A segment is saved only once its expression compiles against its list, so a
send never meets a broken one; `count` is live (confirmed, active readers matching)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.errors import Conflict, InvalidInput, NotFound
from newsletter.models import (
    Digest,
    MailingList,
    Segment,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from newsletter.segments.compile import Cond, compile_segment
from newsletter.subscriptions.lists import SLUG, find_list

Record = dict[str, Any]


def condition(
    session: Session, settings: Settings, segment: Segment, now: datetime | None = None
) -> Cond:
    """The segment's SQL condition over its list's readers (Subscription ⋈ Subscriber)."""
    mlist = session.get(MailingList, segment.list_id)
    assert mlist is not None
    return compile_segment(
        session,
        mlist,
        segment.expression,
        now=now,
        default_language=settings.language_codes[0],
    )


def find_segment(session: Session, slug: str) -> Segment:
    slug = (slug or "").strip()
    # A name no segment can have (a NUL byte, say) is simply not found: never sent to
    # the database, which would refuse some such strings with an error.
    found = (
        session.scalar(select(Segment).where(Segment.slug == slug)) if SLUG.match(slug) else None
    )
    if found is None:
        raise NotFound("segment", f"There is no segment called {slug!r}.")
    return found


def count_readers(session: Session, settings: Settings, segment: Segment) -> int:
    """Confirmed subscriptions of active addresses matching: whom a send would reach."""
    query = (
        select(func.count())
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            Subscription.list_id == segment.list_id,
            Subscription.status == SubscriptionStatus.confirmed,
            Subscriber.status == SubscriberStatus.active,
            condition(session, settings, segment),
        )
    )
    return int(session.scalar(query) or 0)


def record(session: Session, segment: Segment, count: int | None = None) -> Record:
    mlist = session.get(MailingList, segment.list_id)
    out: Record = {
        "slug": segment.slug,
        "list": mlist.slug if mlist else None,
        "name": segment.name,
        "where": segment.expression,
        "created_at": segment.created_at.isoformat() if segment.created_at else None,
    }
    if count is not None:
        out["count"] = count
    return out


def _check(session: Session, settings: Settings, mlist: MailingList, expression: str) -> str:
    expression = (expression or "").strip()
    compile_segment(session, mlist, expression, default_language=settings.language_codes[0])
    return expression


def _name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if len(name) > 200:
        raise InvalidInput("name", "A segment name is at most 200 characters.")
    return name


@audit.audited("segments.create", lambda slug, list_slug, where, name=None: f"segment {slug}")
def create(
    session: Session,
    settings: Settings,
    slug: str,
    list_slug: str,
    where: str,
    name: str | None = None,
) -> Done[Record]:
    """A new segment of a list; its expression must compile."""
    slug = (slug or "").strip()
    if not SLUG.match(slug):
        raise InvalidInput("slug", "A segment slug is lower-case letters, digits and dashes.")
    mlist = find_list(session, list_slug)
    expression = _check(session, settings, mlist, where)
    if session.scalar(select(Segment.id).where(Segment.slug == slug)) is not None:
        raise Conflict("slug", f"A segment called {slug!r} exists already.")
    segment = Segment(slug=slug, list_id=mlist.id, name=_name(name) or slug, expression=expression)
    session.add(segment)
    session.flush()
    return Done(record(session, segment))


@audit.audited("segments.update", lambda slug, where=None, name=None: f"segment {slug}")
def update(
    session: Session,
    settings: Settings,
    slug: str,
    where: str | None = None,
    name: str | None = None,
) -> Done[Record]:
    """A new expression or name; the list stays."""
    segment = find_segment(session, slug)
    if where is not None:
        mlist = session.get(MailingList, segment.list_id)
        assert mlist is not None
        segment.expression = _check(session, settings, mlist, where)
    if name is not None:
        segment.name = _name(name) or segment.slug
    segment.updated_at = utcnow()
    session.flush()
    return Done(record(session, segment))


@audit.audited("segments.delete", lambda slug: f"segment {slug}")
def delete(session: Session, settings: Settings, slug: str) -> Done[Record]:
    """Remove a segment; digests that were sent to it keep their ledger (segment_id NULL).
    A send still waiting (scheduled, awaiting approval, sending) blocks it."""
    segment = find_segment(session, slug)
    waiting = session.scalar(
        select(Digest.id)
        .where(
            Digest.segment_id == segment.id,
            Digest.status.in_(("scheduled", "awaiting_approval", "sending", "paused")),
        )
        .limit(1)
    )
    if waiting is not None:
        raise Conflict("segment", f"send {waiting} targets segment {slug!r}; it stays until then")
    out = record(session, segment)
    session.delete(segment)
    session.flush()
    return Done(out)


def list_segments(
    session: Session, settings: Settings, list_slug: str | None = None, counts: bool = False
) -> Done[list[Record]]:
    query = select(Segment).order_by(Segment.slug)
    if list_slug:
        query = query.where(Segment.list_id == find_list(session, list_slug).id)
    return Done(
        [
            record(session, s, count_readers(session, settings, s) if counts else None)
            for s in session.scalars(query)
        ]
    )


def get_segment(session: Session, settings: Settings, slug: str) -> Done[Record]:
    return Done(record(session, find_segment(session, slug)))


def get_count(session: Session, settings: Settings, slug: str) -> Done[Record]:
    """The live count of confirmed, active readers of the list the segment selects."""
    segment = find_segment(session, slug)
    return Done(record(session, segment, count_readers(session, settings, segment)))


def get_checked(session: Session, settings: Settings, list_slug: str, where: str) -> Done[Record]:
    """Compile an expression against a list without saving it (the console's preview)."""
    mlist = find_list(session, list_slug)
    return Done({"list": mlist.slug, "where": _check(session, settings, mlist, where)})
