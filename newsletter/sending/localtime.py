"""Sending at each reader's local time: one digest, one ledger, rows due by time zone.

When a digest has `local_time` ("07:00"), each ledger row is written with
`next_attempt_at` = the UTC instant of local_time, on the period's local date, in the
reader's zone: Subscriber.timezone, else the `timezone` attribute, each only when it is
a zone this machine knows, else the list's zone. It is one set-based expression in the
INSERT … SELECT (a CASE over the zones the list's readers actually use, computed once
per ledger step), on SQLite and PostgreSQL alike: nothing proportional to the list is
held in memory.

ledger._claim does not take a queued row before its time. Beat's send tick wakes what
became due (`wake_due`): it clears the due time of those rows (a row without one is due)
and enqueues their range once; rows woken and then lost to a dead broker are found by
recover_stalled like any other, which never takes a send that only waits for later time
zones for a stalled one. The send is finished when every row is final, like any other.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    ColumnElement,
    String,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    MailingList,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    UTCDateTime,
)

# The first zone to reach a local time is UTC+14 (Pacific/Kiritimati): a period starts
# that much before its local time in UTC.
EARLIEST_OFFSET = timedelta(hours=14)
_DATE_IN_KEY = re.compile(r"(?:weekly:)?(\d{4}-\d{2}-\d{2})")


def valid_zone(name: str | None) -> bool:
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def period_date(digest: Digest, list_zone: str, now: datetime) -> date:
    """The local date of the period: the date in a scheduled period's key, else the date
    the send started (or `now`) in the list's zone."""
    found = _DATE_IN_KEY.match(digest.period_key or "")
    if found:
        return date.fromisoformat(found.group(1))
    at = digest.started_at or now
    return at.astimezone(ZoneInfo(list_zone)).date()


def instant(day: date, hhmm: str, zone: str) -> datetime:
    """local_time on `day` in `zone`, as UTC (a time skipped by DST moves forward)."""
    hour, minute = (int(p) for p in hhmm.split(":"))
    local = datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone))
    return local.astimezone(UTC)


def lead(list_zone: str, now: datetime) -> timedelta:
    """How long before a period's due time in the list's zone its send starts so that
    the first zone (UTC+14) gets it at its own local time."""
    offset = now.astimezone(ZoneInfo(list_zone)).utcoffset() or timedelta()
    return max(timedelta(), EARLIEST_OFFSET - offset)


def _attribute_zone(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(Subscriber.attributes, JSONB)["timezone"].astext
    return cast(func.json_extract(Subscriber.attributes, "$.timezone"), String)


def due_column(
    session: Session, digest: Digest, mlist: MailingList, now: datetime
) -> ColumnElement[Any]:
    """The `next_attempt_at` of each reader's row, as an expression over Subscriber."""
    assert digest.local_time is not None
    day = period_date(digest, mlist.timezone, now)
    attr_zone = _attribute_zone(session)
    readers = (
        select(Subscriber.timezone.label("zone"))
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(
            Subscription.list_id == mlist.id,
            Subscription.status == SubscriptionStatus.confirmed,
            Subscriber.status == SubscriberStatus.active,
        )
    )
    zones_query = union(
        readers.where(Subscriber.timezone.is_not(None)).distinct(),
        readers.with_only_columns(attr_zone.label("zone")).where(attr_zone.is_not(None)).distinct(),
    )
    zones = sorted({z for z in session.scalars(select(zones_query.subquery().c.zone)) if z})
    valid = [z for z in zones if z != mlist.timezone and valid_zone(z)]
    default = literal(instant(day, digest.local_time, mlist.timezone), UTCDateTime())
    if not valid:
        return default
    key = case(
        (Subscriber.timezone.in_(valid), Subscriber.timezone),
        # The attribute counts when the reader's own zone is unset or unknown.
        (or_(Subscriber.timezone.is_(None), Subscriber.timezone.not_in(valid)), attr_zone),
        else_=literal(None, String()),
    )
    whens = {z: literal(instant(day, digest.local_time, z), UTCDateTime()) for z in valid}
    return case(whens, value=key, else_=default)


def wake_due(session: Session, size: int, now: datetime) -> list[tuple[int, list[tuple[int, int]]]]:
    """Beat: in each local-time send, the rows whose time came: their due time is cleared
    (due now) and their id ranges returned to enqueue, once."""
    found: list[tuple[int, list[tuple[int, int]]]] = []
    sends = session.scalars(
        select(Digest.id).where(
            Digest.status == DigestStatus.sending, Digest.local_time.is_not(None)
        )
    ).all()
    for digest_id in sends:
        ranges = wake_digest(session, digest_id, size, now)
        if ranges:
            found.append((digest_id, ranges))
    return found


def wake_digest(
    session: Session, digest_id: int, size: int, now: datetime, after: int | None = None
) -> list[tuple[int, int]]:
    """The rows of one send that are due at `now` and still carry their due time."""
    cond = [
        Delivery.digest_id == digest_id,
        Delivery.status == DeliveryStatus.queued,
        Delivery.next_attempt_at <= now,
    ]
    if after is not None:
        cond.append(Delivery.id > after)
    lo, hi = session.execute(
        select(func.min(Delivery.id), func.max(Delivery.id)).where(*cond)
    ).one()
    if lo is None:
        return []
    session.execute(
        update(Delivery)
        .where(*cond, Delivery.id.between(lo, hi))
        .values(next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    ranges = []
    start = lo
    while start <= hi:
        ranges.append((start, min(hi, start + size - 1)))
        start += size
    return ranges


def waiting(session: Session, digest_id: int, now: datetime) -> bool:
    """Whether the send has rows whose local time has not come."""
    return (
        session.scalar(
            select(Delivery.id)
            .where(
                Delivery.digest_id == digest_id,
                Delivery.status == DeliveryStatus.queued,
                Delivery.next_attempt_at > now,
            )
            .limit(1)
        )
        is not None
    )
