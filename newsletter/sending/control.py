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
from newsletter.errors import InvalidInput, NotFound
from newsletter.models import (
    BounceEvent,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    MailingList,
    utcnow,
)
from newsletter.sending.job import OPEN, Range, open_ranges

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
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def list_sends(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    digests = session.scalars(
        select(Digest).where(Digest.started_at.is_not(None)).order_by(Digest.id.desc()).limit(limit)
    ).all()
    return [send_status(session, d) for d in digests]


def pause(session: Session, digest_id: int, by: str, reason: str) -> bool:
    return bool(
        session.execute(
            update(Digest)
            .where(Digest.id == digest_id, Digest.status == DigestStatus.sending)
            .values(status=DigestStatus.paused, paused_by=by, pause_reason=reason)
        ).rowcount
    )


def operator_pause(session: Session, digest_id: int) -> None:
    digest = get_digest(session, digest_id)
    if digest.status == DigestStatus.paused:
        return
    if not pause(session, digest_id, "operator", "paused by the operator"):
        raise InvalidInput("id", f"send {digest_id} is {digest.status}; only a sending one pauses")


def resume(
    session: Session, settings: Settings, digest_id: int, *, only_outage: bool = False
) -> list[Range]:
    """Back to sending; the caller enqueues the returned ranges (empty if nothing to do)."""
    query = update(Digest).where(Digest.id == digest_id, Digest.status == DigestStatus.paused)
    if only_outage:
        query = query.where(Digest.paused_by == "outage")
    changed = session.execute(
        query.values(
            status=DigestStatus.sending, paused_by=None, pause_reason=None, progress_at=utcnow()
        )
    ).rowcount
    if not changed:
        return []
    return list(open_ranges(session, digest_id, settings.send_batch_size))


def operator_resume(session: Session, settings: Settings, digest_id: int) -> list[Range]:
    digest = get_digest(session, digest_id)
    if digest.status == DigestStatus.sending:
        # Idempotent, and a way to kick a send whose batches were lost.
        return list(open_ranges(session, digest_id, settings.send_batch_size))
    if digest.status != DigestStatus.paused:
        raise InvalidInput("id", f"send {digest_id} is {digest.status}; only a paused one resumes")
    return resume(session, settings, digest_id)


def cancel(session: Session, digest_id: int) -> None:
    """Stop for good: every delivery not yet sent ends failed with the reason."""
    digest = get_digest(session, digest_id)
    if digest.status not in (DigestStatus.sending, DigestStatus.paused, DigestStatus.scheduled):
        raise InvalidInput("id", f"send {digest_id} is {digest.status}; nothing to cancel")
    now = utcnow()
    digest.status = DigestStatus.cancelled
    digest.finished_at = now
    session.execute(
        update(Delivery)
        .where(
            Delivery.digest_id == digest_id,
            Delivery.status.in_((DeliveryStatus.queued, DeliveryStatus.deferred)),
        )
        .values(
            status=DeliveryStatus.failed, smtp_reply="cancelled by the operator", updated_at=now
        )
    )


def retry_failed(session: Session, settings: Settings, digest_id: int) -> list[Range]:
    """Queue the failed deliveries again (and only those); the send runs again."""
    digest = get_digest(session, digest_id)
    if digest.status in (DigestStatus.draft, DigestStatus.scheduled):
        raise InvalidInput("id", f"send {digest_id} has not started")
    if digest.status == DigestStatus.cancelled:
        # The operator stopped it on purpose: its unsent readers must not get it after all.
        raise InvalidInput(
            "id", f"send {digest_id} is cancelled; compose a new digest to reach its readers"
        )
    changed = session.execute(
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
    ).rowcount
    if not changed:
        return []
    digest.status = DigestStatus.sending
    digest.finished_at = None
    digest.paused_by = None
    digest.pause_reason = None
    digest.progress_at = utcnow()
    session.flush()
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
    return pause(session, digest_id, "bounce_rate", reason)


def open_count(session: Session, digest_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Delivery.digest_id == digest_id, Delivery.status.in_(OPEN))
        )
        or 0
    )
