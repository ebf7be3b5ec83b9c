"""The send job: the ledger first, in one set-based statement, then id ranges to enqueue.

One INSERT … SELECT writes a delivery row per confirmed subscriber whose address is
active (bounced, complained and suppressed people are never selected), in the same
transaction that marks the digest as sending, so a send either exists completely or
not at all. The batches are ranges of delivery ids computed from the min and max id:
nothing proportional to the list is ever held in memory, here or in a worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import and_, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from newsletter.addresses import InvalidInput
from newsletter.config import Settings
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    utcnow,
)

Range = tuple[int, int]
OPEN = (DeliveryStatus.queued, DeliveryStatus.sending, DeliveryStatus.deferred)


def start_send(session: Session, settings: Settings, digest: Digest) -> list[Range]:
    """Write the ledger for `digest` and mark it sending; return the batch ranges."""
    if digest.status not in (DigestStatus.draft, DigestStatus.scheduled):
        raise InvalidInput("digest", f"digest {digest.id} is {digest.status}, not a draft")
    recipients = (
        select(
            literal(digest.id),
            Subscription.subscriber_id,
            literal(DeliveryStatus.queued.value),
            literal(0),
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            Subscription.list_id == digest.list_id,
            Subscription.status == SubscriptionStatus.confirmed,
            Subscriber.status == SubscriberStatus.active,
        )
        .order_by(Subscription.subscriber_id)
    )
    session.execute(
        insert(Delivery).from_select(
            ["digest_id", "subscriber_id", "status", "attempts"], recipients
        )
    )
    now = utcnow()
    digest.status = DigestStatus.sending
    digest.started_at = now
    digest.progress_at = now
    digest.finished_at = None
    digest.pause_reason = None
    digest.paused_by = None
    session.flush()
    ranges = list(open_ranges(session, digest.id, settings.send_batch_size))
    if not ranges:
        digest.status = DigestStatus.sent
        digest.finished_at = now
    return ranges


def open_ranges(session: Session, digest_id: int, size: int) -> Iterator[Range]:
    """Id ranges covering every delivery of the send that is not final yet."""
    lo, hi = session.execute(
        select(func.min(Delivery.id), func.max(Delivery.id)).where(
            Delivery.digest_id == digest_id, Delivery.status.in_(OPEN)
        )
    ).one()
    if lo is None:
        return
    start = lo
    while start <= hi:
        yield (start, min(hi, start + size - 1))
        start += size


def recover_stalled(session: Session, settings: Settings) -> list[tuple[int, list[Range]]]:
    """Sends whose batches stopped reporting (a dead worker, a lost broker message).

    A send is stalled when it is sending, or paused by an SMTP outage, and no batch
    reported for SEND_STALL_SECONDS. Its open ranges are enqueued again: a batch claims
    rows atomically and skips what is sent or journaled, so a spurious recovery costs a
    few empty tasks, never a duplicate. progress_at is touched so that the next tick
    does not recover the same send again at once.
    """
    now = utcnow()
    stale = now - timedelta(seconds=settings.send_stall_seconds)
    digests = session.scalars(
        select(Digest).where(
            or_(
                Digest.status == DigestStatus.sending,
                and_(Digest.status == DigestStatus.paused, Digest.paused_by == "outage"),
            ),
            or_(Digest.progress_at.is_(None), Digest.progress_at < stale),
        )
    ).all()
    found: list[tuple[int, list[Range]]] = []
    for digest in digests:
        claimed = session.execute(
            update(Digest)
            .where(
                Digest.id == digest.id,
                or_(Digest.progress_at.is_(None), Digest.progress_at < stale),
            )
            .values(progress_at=now)
        ).rowcount
        if claimed:
            ranges = list(open_ranges(session, digest.id, settings.send_batch_size))
            if digest.status == DigestStatus.paused:
                ranges = ranges[:1]  # one probe of the SMTP server is enough
            found.append((digest.id, ranges))
    return found
