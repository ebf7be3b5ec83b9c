"""The send job: the ledger first, in set-based statements, then id ranges to enqueue.

The ledger is written in two steps so that the first message leaves within a second of
"send" whatever the list size (a single INSERT … SELECT of 200k rows takes seconds):

1. `start_send` writes the first SEND_FIRST_CHUNK recipients (by subscriber id) with one
   INSERT … SELECT in the transaction that marks the digest sending, and sets
   `ledger_complete` false if more recipients remain. Its ranges go out at once.
2. `complete_ledger` (a task, queued by workers.tasks.enqueue_ranges) writes every
   recipient with INSERT … SELECT … ON CONFLICT DO NOTHING, so the first chunk is
   skipped, sets `ledger_complete` in the same transaction and returns the ranges of
   the new rows only.

A send with an incomplete ledger is never finished (batch._finish), and recovery
re-queues step 2 when it was lost, so no recipient is lost between the steps. A list no
longer than the first chunk is complete in step 1, exactly as before. The batches are
ranges of delivery ids computed from the min and max id: nothing proportional to the
list is ever held in memory, here or in a worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.digests import carry
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    MailingList,
    Segment,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from newsletter.sending import lifecycle, localtime
from newsletter.sending.lifecycle import OPEN, Event, IllegalTransition, PausedBy, rowcount

Range = tuple[int, int]
__all__ = [
    "OPEN",
    "Range",
    "complete_ledger",
    "open_ranges",
    "recover_dead_claims",
    "recover_stalled",
    "start_send",
]
_COLUMNS = ["digest_id", "subscriber_id", "status", "attempts", "variant"]


@dataclass(frozen=True)
class Audience:
    """Who of the list a digest goes to, beyond the rule every send keeps: a segment's
    condition, the readers of one frequency, and each row's due time at local time."""

    segment: ColumnElement[bool] | None = None
    frequency: str | None = None
    due: ColumnElement[Any] | None = None


def audience_of(
    session: Session, settings: Settings, digest: Digest, now: datetime | None = None
) -> Audience:
    """The digest's segment (compiled now: relative dates count from the send), its
    frequency (the round-up to "weekly" readers; every edition to "every" readers when
    the list offers a round-up, else to all) and its local time."""
    mlist = session.get(MailingList, digest.list_id)
    assert mlist is not None
    now = now or utcnow()
    segment = None
    if digest.segment_id is not None:
        from newsletter.segments.actions import condition

        found = session.get(Segment, digest.segment_id)
        if found is not None:
            # Relative dates count from the start, so both ledger steps select alike.
            segment = condition(session, settings, found, now=digest.started_at or now)
    if digest.frequency == "weekly":
        frequency: str | None = "weekly"
    else:
        frequency = "every" if mlist.weekly else None
    due = localtime.due_column(session, digest, mlist, now) if digest.local_time else None
    return Audience(segment, frequency, due)


def _recipients(
    session: Session,
    digest_id: int,
    list_id: int,
    links: list[carry.Link],
    audience: Audience = Audience(),
) -> Select[Any]:
    """Who gets a digest: a confirmed subscription and an active address (bounced,
    complained and suppressed people are never selected), each with the variant that
    leaves out what a send cancelled part-way gave them already (digests/carry.py);
    someone whose variant has no story left is not selected. One query for both steps,
    so the two can never disagree about who is on the list. The audience narrows it
    (never widens it) and, at local time, adds each row's due time as a last column."""
    languages = carry.languages_of(session, digest_id, links)  # {} for one language
    variant = carry.variant_of_reader(
        links, Subscription.subscriber_id, languages, Subscriber.language
    )
    columns: list[Any] = [
        literal(digest_id),
        Subscription.subscriber_id,
        literal(DeliveryStatus.queued.value),
        literal(0),
        variant,
    ]
    if audience.due is not None:
        columns.append(audience.due)
    query = (
        select(*columns)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            Subscription.list_id == list_id,
            Subscription.status == SubscriptionStatus.confirmed,
            Subscriber.status == SubscriberStatus.active,
        )
        .order_by(Subscription.subscriber_id)
    )
    if audience.segment is not None:
        query = query.where(audience.segment)
    if audience.frequency is not None:
        query = query.where(Subscription.frequency == audience.frequency)
    kept = carry.kept_variants(session, digest_id, links)
    if kept is not None:
        query = query.where(variant.in_(kept))
    return query


def _columns(audience: Audience) -> list[str]:
    return [*_COLUMNS, "next_attempt_at"] if audience.due is not None else _COLUMNS


def start_send(
    session: Session, settings: Settings, digest: Digest, now: datetime | None = None
) -> list[Range]:
    """Write the first chunk of the ledger and mark the digest sending; return its ranges.

    The caller commits, then passes the ranges to workers.tasks.enqueue_ranges, which also
    queues `complete_ledger` when `digest.ledger_complete` is false. A list with a local
    time gives the digest its local time here; its rows not due yet at `now` are not in
    the ranges (beat's send tick wakes them, localtime.wake_due).
    """
    if not lifecycle.allows(digest.status, Event.start):
        raise _not_a_draft(digest)
    now = now or utcnow()
    mlist = session.get(MailingList, digest.list_id)
    if mlist is not None and mlist.local_time and digest.local_time is None:
        digest.local_time = mlist.local_time
        session.flush()
    chunk = settings.send_first_chunk
    audience = audience_of(session, settings, digest, now)
    recipients = _recipients(session, digest.id, digest.list_id, carry.links_of(digest), audience)
    session.execute(insert(Delivery).from_select(_columns(audience), recipients.limit(chunk)))
    # Is anyone left? One indexed probe past the last one written (the driver's rowcount
    # for INSERT … SELECT is not reliable: -1 on psycopg here).
    last = select(func.max(Delivery.subscriber_id)).where(Delivery.digest_id == digest.id)
    more = (
        session.scalar(
            recipients.with_only_columns(Subscription.subscriber_id)
            .where(Subscription.subscriber_id > last.scalar_subquery())
            .limit(1)
        )
        is not None
    )
    if not lifecycle.start(session, digest.id, ledger_complete=not more):
        raise _not_a_draft(digest)  # another process started it meanwhile
    if audience.due is not None:
        ranges = localtime.wake_digest(session, digest.id, settings.send_batch_size, now)
        if not ranges and localtime.waiting(session, digest.id, now):
            return ranges  # every reader's time is still to come
    else:
        ranges = list(open_ranges(session, digest.id, settings.send_batch_size))
    if not ranges:
        lifecycle.finish_if_done(session, digest.id)  # nobody to send to
    return ranges


def _not_a_draft(digest: Digest) -> IllegalTransition:
    message = f"digest {digest.id} is {digest.status}, not a draft"
    return IllegalTransition(digest.status, Event.start, message, field="digest")


def complete_ledger(
    session: Session, settings: Settings, digest_id: int, now: datetime | None = None
) -> list[Range]:
    """Write the recipients `start_send` left out; return the ranges to enqueue.

    Owns its transaction: when there is nothing to do it rolls `session` back. ON
    CONFLICT skips whoever is in the ledger already (the first chunk, or a concurrent
    run's rows, which it waits for), so a re-run adds nothing twice. The flag is claimed
    (false → true, only while sending or paused) after the insert, not before: batches
    hold delivery rows while they touch the digest row, so taking the digest row first
    and the delivery index second could deadlock with them. If the claim finds the send
    cancelled, or another run done, the insert is rolled back: a cancelled send never
    gets its rest. A paused send keeps its rows but gets no ranges: they wait with the
    pause, and resume enqueues them.
    """
    found = session.execute(
        select(Digest.list_id, Digest.status, Digest.ledger_complete, Digest.carry).where(
            Digest.id == digest_id
        )
    ).first()
    live = (DigestStatus.sending, DigestStatus.paused)
    if found is None or found.ledger_complete or found.status not in live:
        return []
    before = session.scalar(select(func.max(Delivery.id)).where(Delivery.digest_id == digest_id))
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = now or utcnow()
    digest = session.get(Digest, digest_id)
    assert digest is not None
    audience = audience_of(session, settings, digest, now)
    session.execute(
        upsert(Delivery)
        .from_select(
            _columns(audience),
            _recipients(session, digest_id, found.list_id, carry.links_from(found.carry), audience),
        )
        .on_conflict_do_nothing(index_elements=["digest_id", "subscriber_id"])
    )
    claimed = session.execute(
        update(Digest)
        .where(
            Digest.id == digest_id,
            Digest.ledger_complete.is_(False),
            Digest.status.in_(live),
        )
        .values(ledger_complete=True)
        .returning(Digest.status)
    ).scalar()
    if claimed is None:
        session.rollback()
        return []
    if claimed != DigestStatus.sending:
        return []
    if audience.due is not None:
        size = settings.send_batch_size
        ranges = localtime.wake_digest(session, digest_id, size, now, after=before)
        if not ranges and localtime.waiting(session, digest_id, now):
            return ranges
    else:
        ranges = list(open_ranges(session, digest_id, settings.send_batch_size, after=before))
    if not ranges:
        # Nobody new (they left the list meanwhile): if the first chunk's batches are
        # done, none of them could finish the send while its ledger was incomplete.
        lifecycle.finish_if_done(session, digest_id)
    return ranges


def open_ranges(
    session: Session,
    digest_id: int,
    size: int,
    after: int | None = None,
    due_at: datetime | None = None,
) -> Iterator[Range]:
    """Id ranges covering every delivery of the send that is not final yet (only those
    with an id above `after`, when given: the rows a step just wrote; with `due_at`,
    leaving out queued rows whose local time comes later)."""
    query = select(func.min(Delivery.id), func.max(Delivery.id)).where(
        Delivery.digest_id == digest_id, Delivery.status.in_(OPEN)
    )
    if after is not None:
        query = query.where(Delivery.id > after)
    if due_at is not None:
        query = query.where(
            or_(
                Delivery.status != DeliveryStatus.queued,
                Delivery.next_attempt_at.is_(None),
                Delivery.next_attempt_at <= due_at,
            )
        )
    lo, hi = session.execute(query).one()
    if lo is None:
        return
    start = lo
    while start <= hi:
        yield (start, min(hi, start + size - 1))
        start += size


def recover_stalled(
    session: Session,
    settings: Settings,
    *,
    stall_seconds: float | None = None,
    now: datetime | None = None,
) -> list[tuple[int, list[Range]]]:
    """Sends whose batches stopped reporting (a dead worker, a lost broker message).

    A send is stalled when it is sending, or paused by an SMTP outage, and no batch
    reported for SEND_STALL_SECONDS. A sending one whose ledger is complete and has
    nothing open is finished here (its last batch saw it paused, or died after folding:
    no batch would ever come to do it), and one paused by an outage with nothing open is
    resumed and finished (no batch would come to probe). Otherwise its open ranges are
    enqueued again: a batch claims rows atomically and skips what is sent or journaled,
    so a spurious recovery costs a few empty tasks, never a duplicate. The caller passes
    them to enqueue_ranges even when empty, which queues `complete_ledger` again for a
    ledger left incomplete (the process that started the send died before queuing it, or
    its task was lost).
    progress_at is touched so that the next tick does not recover the same send again at
    once. `stall_seconds` 0 recovers every send now: the broker lost what was queued.
    A local-time send whose open rows all wait for their readers' time is not stalled.
    """
    now = now or utcnow()
    stall = settings.send_stall_seconds if stall_seconds is None else stall_seconds
    stale = now - timedelta(seconds=stall)
    digests = session.scalars(
        select(Digest).where(
            or_(
                Digest.status == DigestStatus.sending,
                and_(Digest.status == DigestStatus.paused, Digest.paused_by == PausedBy.outage),
            ),
            or_(Digest.progress_at.is_(None), Digest.progress_at < stale),
        )
    ).all()
    found: list[tuple[int, list[Range]]] = []
    for digest in digests:
        claimed = rowcount(
            session.execute(
                update(Digest)
                .where(
                    Digest.id == digest.id,
                    or_(Digest.progress_at.is_(None), Digest.progress_at < stale),
                )
                .values(progress_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        if claimed:
            if digest.status == DigestStatus.sending and lifecycle.finish_if_done(
                session, digest.id
            ):
                continue
            ranges = list(
                open_ranges(
                    session,
                    digest.id,
                    settings.send_batch_size,
                    due_at=now if digest.local_time else None,
                )
            )
            if (
                not ranges
                and digest.ledger_complete
                and digest.local_time
                and localtime.waiting(session, digest.id, now)
            ):
                continue  # not stalled: it waits for later time zones

            if digest.status == DigestStatus.paused:
                if ranges:
                    ranges = ranges[:1]  # one probe of the SMTP server is enough
                elif lifecycle.resume(session, digest.id, only=PausedBy.outage):
                    # Nothing left to send: no batch would come to probe and resume it.
                    lifecycle.finish_if_done(session, digest.id)
            found.append((digest.id, ranges))
    return found


def recover_dead_claims(session: Session, settings: Settings) -> list[tuple[int, list[Range]]]:
    """The ranges of rows claimed by a dead batch, whatever the rest of the send does.

    A running batch renews its claim every SEND_HEARTBEAT_SECONDS (batch.Heartbeat), so
    a row still `sending` whose claimed_at is older than SEND_LEASE_SECONDS belongs to a
    worker that died (SIGKILL, lost host) or a batch whose task was lost. Today's
    `recover_stalled` does not see those while other batches of the send make progress;
    this does, and it is cheap enough to run every SEND_CLAIM_CHECK_SECONDS: only sends
    that are sending, and in each only its `sending` rows (ix_deliveries_digest_status),
    at most one batch's worth per worker.

    The ranges cover the dead rows, each at most SEND_BATCH_SIZE ids wide; the
    batch that runs one takes them over in its claim statement (`claimed_at` still older
    than the lease), asks the journal what was accepted, and sends the rest: the one
    owner rule is the claim UPDATE's, not this query's. A check that comes again before
    those batches ran enqueues the same ranges once more; the later ones claim nothing.
    """
    stale = utcnow() - timedelta(seconds=settings.send_lease_seconds)
    sending = select(Digest.id).where(Digest.status == DigestStatus.sending)
    dead = session.execute(
        select(Delivery.digest_id, Delivery.id)
        .where(
            Delivery.digest_id.in_(sending.scalar_subquery()),
            Delivery.status == DeliveryStatus.sending,
            or_(Delivery.claimed_at.is_(None), Delivery.claimed_at < stale),
        )
        .order_by(Delivery.digest_id, Delivery.id)
        .limit(_DEAD_ROWS_PER_CHECK)
    ).all()
    size = settings.send_batch_size
    found: dict[int, list[Range]] = {}
    for digest_id, delivery_id in dead:
        ranges = found.setdefault(digest_id, [])
        if ranges and delivery_id <= ranges[-1][0] + size - 1:
            ranges[-1] = (ranges[-1][0], delivery_id)
        else:
            ranges.append((delivery_id, delivery_id))
    return list(found.items())


# More than any realistic workers × batch size; the next check takes the rest.
_DEAD_ROWS_PER_CHECK = 50_000
