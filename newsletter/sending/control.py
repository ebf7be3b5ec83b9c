"""Operator control over a send, shared by the CLI and the admin API.

Pause stops batches at their next check (within about a second) and gives their
unsent rows back; resume and retry return the id ranges the caller enqueues again.
Status counts come from the ledger itself, so they are the truth whatever a worker did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import NotFound
from newsletter.models import (
    BounceEvent,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    MailingList,
    utcnow,
)
from newsletter.sending import lifecycle
from newsletter.sending.job import OPEN, Range, open_ranges
from newsletter.sending.lifecycle import Event, IllegalTransition, PausedBy, rowcount

COUNTS = ("queued", "sent", "deferred", "bounced", "failed")


def get_digest(session: Session, digest_id: int) -> Digest:
    digest = session.get(Digest, digest_id)
    if digest is None:
        raise NotFound("id", f"there is no send {digest_id}")
    return digest


def send_status(session: Session, digest: Digest) -> dict[str, Any]:
    """id, status, the counts total/queued/sent/deferred/bounced/failed, rate (msgs/s)."""
    counts = dict.fromkeys(COUNTS, 0)
    total = 0
    for status, n in session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.digest_id == digest.id)
        .group_by(Delivery.status)
    ):
        total += n
        # In flight counts as queued: it is not delivered until the server said so.
        key = "queued" if status == DeliveryStatus.sending else str(status)
        counts[key] = counts.get(key, 0) + n
    done = counts["sent"] + counts["bounced"] + counts["failed"]
    rate = 0.0
    if digest.started_at is not None:
        end = digest.finished_at or utcnow()
        elapsed = (end - digest.started_at).total_seconds()
        rate = round(done / elapsed, 1) if elapsed > 0 else 0.0
    list_slug = session.scalar(select(MailingList.slug).where(MailingList.id == digest.list_id))
    return {
        "id": digest.id,
        "list": list_slug,
        "subject": digest.subject,
        "status": digest.status,
        "pause_reason": digest.pause_reason,
        "total": total,
        # False while the rest of a large list is still being written: total will grow.
        "ledger_complete": digest.ledger_complete,
        **counts,
        "rate": rate,
        "started_at": _iso(digest.started_at),
        "finished_at": _iso(digest.finished_at),
        "requested_by": digest.requested_by,
        "approved_by": digest.approved_by,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def list_sends(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    digests = session.scalars(
        select(Digest)
        .where(Digest.started_at.is_not(None) | (Digest.status == DigestStatus.awaiting_approval))
        .order_by(Digest.id.desc())
        .limit(limit)
    ).all()
    return [send_status(session, d) for d in digests]


def pause(session: Session, digest_id: int, by: str, reason: str) -> bool:
    """sending → paused (lifecycle.pause); `by` is a lifecycle.PausedBy value."""
    return lifecycle.pause(session, digest_id, PausedBy(by), reason)


def operator_pause(session: Session, digest_id: int) -> None:
    digest = get_digest(session, digest_id)
    if digest.status == DigestStatus.paused:
        return
    if not lifecycle.pause(session, digest_id, PausedBy.operator, "paused by the operator"):
        message = f"send {digest_id} is {digest.status}; only a sending one pauses"
        raise IllegalTransition(digest.status, Event.pause, message)


def resume(
    session: Session, settings: Settings, digest_id: int, *, only_outage: bool = False
) -> list[Range]:
    """Back to sending; the caller enqueues the returned ranges (empty if nothing to do).

    A send whose last batch ended while it was paused (that batch could not finish it)
    has nothing open: it is finished here, in the same transaction, rather than left
    sending with no batch to come.
    """
    only = PausedBy.outage if only_outage else None
    if not lifecycle.resume(session, digest_id, only=only):
        return []
    return _ranges_or_finish(session, settings, digest_id)


def _ranges_or_finish(session: Session, settings: Settings, digest_id: int) -> list[Range]:
    """The open ranges of a sending send; none, and the send finished, if it is done."""
    ranges = list(open_ranges(session, digest_id, settings.send_batch_size))
    if not ranges:
        lifecycle.finish_if_done(session, digest_id)
    return ranges


def operator_resume(session: Session, settings: Settings, digest_id: int) -> list[Range]:
    digest = get_digest(session, digest_id)
    if digest.status == DigestStatus.sending:
        # Idempotent, and a way to kick a send whose batches were lost (or finish one
        # whose last batch was lost after its rows were written).
        return _ranges_or_finish(session, settings, digest_id)
    if not lifecycle.allows(digest.status, Event.resume):
        message = f"send {digest_id} is {digest.status}; only a paused one resumes"
        raise IllegalTransition(digest.status, Event.resume, message)
    return resume(session, settings, digest_id)


def cancel(session: Session, digest_id: int) -> None:
    """Stop for good: every delivery not yet sent ends failed with the reason."""
    digest = get_digest(session, digest_id)
    current = digest.status
    if current == DigestStatus.awaiting_approval:
        lifecycle.withdraw(session, digest_id)  # nothing was sent: the draft stays usable
        return
    if not lifecycle.cancel(session, digest_id):
        message = f"send {digest_id} is {current}; nothing to cancel"
        raise IllegalTransition(current, Event.cancel, message)
    session.execute(
        update(Delivery)
        .where(
            Delivery.digest_id == digest_id,
            Delivery.status.in_((DeliveryStatus.queued, DeliveryStatus.deferred)),
        )
        .values(
            status=DeliveryStatus.failed,
            smtp_reply="cancelled by the operator",
            updated_at=utcnow(),
        )
    )


def retry_failed(session: Session, settings: Settings, digest_id: int) -> list[Range]:
    """Queue the failed deliveries again (and only those); the send runs again.

    With none to queue, a send that is sending with nothing open is finished at once.
    """
    digest = get_digest(session, digest_id)
    if digest.status in (DigestStatus.draft, DigestStatus.scheduled):
        message = f"send {digest_id} has not started"
        raise IllegalTransition(digest.status, Event.retry, message)
    if digest.status == DigestStatus.cancelled:
        # The operator stopped it on purpose: its unsent readers must not get it after all.
        message = f"send {digest_id} is cancelled; compose a new digest to reach its readers"
        raise IllegalTransition(digest.status, Event.retry, message)
    changed = rowcount(
        session.execute(
            update(Delivery)
            .where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.failed)
            .values(
                status=DeliveryStatus.queued,
                attempts=0,
                next_attempt_at=None,
                smtp_code=None,
                smtp_reply=None,
                claim=None,
            )
        )
    )
    if not changed:
        if digest.status == DigestStatus.sending:
            _ranges_or_finish(session, settings, digest_id)
        return []
    lifecycle.retry(session, digest_id)
    return list(open_ranges(session, digest_id, settings.send_batch_size))


def check_bounce_rate(session: Session, settings: Settings, digest_id: int) -> bool:
    """Pause a send whose hard-bounce plus complaint rate passes the threshold."""
    done = session.scalar(
        select(func.count()).where(
            Delivery.digest_id == digest_id,
            Delivery.status.in_((DeliveryStatus.sent, DeliveryStatus.bounced)),
        )
    )
    if not done or done < settings.send_bounce_min_deliveries:
        return False
    bounced = session.scalar(
        select(func.count()).where(
            Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.bounced
        )
    )
    complaints = session.scalar(
        select(func.count())
        .select_from(BounceEvent)
        .join(Delivery, Delivery.id == BounceEvent.delivery_id)
        .where(Delivery.digest_id == digest_id, BounceEvent.kind == "complaint")
    )
    rate = ((bounced or 0) + (complaints or 0)) / done
    if rate <= settings.send_bounce_threshold:
        return False
    reason = (
        f"hard-bounce and complaint rate {rate:.1%} after {done} deliveries is over "
        f"{settings.send_bounce_threshold:.0%}; check the list, then resume"
    )
    return lifecycle.pause(session, digest_id, PausedBy.bounce_rate, reason)


def open_count(session: Session, digest_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Delivery.digest_id == digest_id, Delivery.status.in_(OPEN))
        )
        or 0
    )
