"""Finding readers among a million: prefix search on an index, keyset pages, no COUNT.

An address or a name prefix is a range on an index (migration 0009): on PostgreSQL the
key is compared with COLLATE "C" so "starts with" is a byte range whatever the database
collation, and the index is built the same way; SQLite compares bytes already. Pages
follow the key (`after`: the last reader shown), never OFFSET; the total is the "about"
figure of the stats snapshot, never a COUNT(*) per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.orm import Session

from newsletter.errors import InvalidInput
from newsletter.models import (
    MailingList,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.stats import aggregates

PAGE = 50
# The largest code point: every string that starts with q sorts before q + TOP.
TOP = "\U0010ffff"
Field = Literal["address", "name"]
SUBSCRIPTION_STATES = tuple(s.value for s in SubscriptionStatus)
READER_STATES = tuple(s.value for s in SubscriberStatus if s != SubscriberStatus.active)


@dataclass(frozen=True)
class Row:
    id: int
    email: str
    name: str
    status: str
    created_at: str


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_after: int | None  # the cursor of the next page, None on the last


def _key(session: Session, field: Field) -> ColumnElement[Any]:
    column = (Subscriber.email if field == "address" else Subscriber.name).expression
    if session.get_bind().dialect.name == "postgresql":
        return column.collate("C")
    return column


def _prefixes(field: Field, query: str) -> list[str]:
    """Addresses are stored lower-cased; names as people wrote them, so a name is looked
    for as typed and with capitals ("ana lima" finds "Ana Lima")."""
    if field == "address":
        return [query.lower()]
    forms = [query, query.lower(), query.title(), query[:1].upper() + query[1:]]
    return list(dict.fromkeys(forms))


def search(
    session: Session,
    *,
    query: str = "",
    field: Field = "address",
    list_slug: str | None = None,
    status: str | None = None,
    after: int | None = None,
    limit: int = PAGE,
) -> Page:
    """One page of readers: by prefix of address or name, on a list, in a state (of
    the subscription to that list or any list: confirmed/unconfirmed/unsubscribed; or
    the reader's own: bounced/complained/suppressed)."""
    prefix = " ".join(query.split())[:320]
    stmt = select(Subscriber)
    list_id = None
    if list_slug:
        list_id = session.scalar(select(MailingList.id).where(MailingList.slug == list_slug))
        if list_id is None:
            raise InvalidInput("list", f"There is no list called {list_slug!r}.")
    if status and status not in SUBSCRIPTION_STATES + READER_STATES:
        raise InvalidInput("status", f"Unknown status {status!r}.")
    if status in READER_STATES:
        stmt = stmt.where(Subscriber.status == status)
    if list_id is not None or status in SUBSCRIPTION_STATES:
        on = [Subscription.subscriber_id == Subscriber.id]
        if list_id is not None:
            on.append(Subscription.list_id == list_id)
        if status in SUBSCRIPTION_STATES:
            on.append(Subscription.status == status)
        stmt = stmt.where(select(Subscription.id).where(*on).exists())

    if prefix:
        key = _key(session, field)
        mark = None
        if after is not None:
            last = session.get(Subscriber, after)
            if last is not None:
                mark = last.email if field == "address" else last.name
        # One ordered index range per form of the prefix (an OR of ranges would make
        # the database gather and sort every match): merged here, in the same order
        # (code points, as COLLATE "C" and SQLite compare). The page's mark bounds only
        # the range it falls in: as a row comparison elsewhere it would set where the
        # index scan starts, far before the range.
        found: list[Subscriber] = []
        for form in _prefixes(field, prefix):
            ranged = stmt.where(key >= form, key < form + TOP)
            if mark is not None and mark >= form + TOP:
                continue  # the whole range was on earlier pages
            if mark is not None and mark >= form:
                ranged = ranged.where(tuple_(key, Subscriber.id) > tuple_(mark, after))
            ranged = ranged.order_by(key, Subscriber.id).limit(limit + 1)
            found.extend(session.scalars(ranged))
        unique = {s.id: s for s in found}.values()
        found = sorted(unique, key=lambda s: (s.email if field == "address" else s.name, s.id))
        found = found[: limit + 1]
    else:
        # Newest first: the reader an operator just added or imported is on top.
        if after is not None:
            stmt = stmt.where(Subscriber.id < after)
        found = list(session.scalars(stmt.order_by(Subscriber.id.desc()).limit(limit + 1)))
    rows = [Row(s.id, s.email, s.name, s.status, s.created_at.strftime("%Y-%m-%d")) for s in found]
    more = len(rows) > limit
    return Page(rows[:limit], rows[limit - 1].id if more else None)


def about_total(session: Session) -> int:
    """How many readers there are, as of the last refresh of the maintained counts."""
    return sum(aggregates.subscriber_counts(session).values())
