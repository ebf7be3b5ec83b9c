"""Operator actions on sends: one function each, called by the CLI, the API and the console.

Each returns the send's status (the same object everywhere: id, status, the counts) and,
where batches must run, a SendBatches effect that workers/gateway.py queues after commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.effects import Done, Effect, Range, SendBatches
from newsletter.errors import Conflict, NotFound, Unavailable
from newsletter.mail.smtp import SmtpTransport
from newsletter.models import (
    Digest,
    DigestStatus,
    MailingList,
    Segment,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.sending import approval, control, later
from newsletter.sending.job import start_send
from newsletter.subscriptions.lists import find_list

Status = dict[str, Any]


def _batches(digest_id: int, ranges: list[Range]) -> tuple[Effect, ...]:
    # Queued even when empty: the gateway then still writes the rest of an incomplete ledger.
    return (SendBatches(digest_id, tuple(ranges)),)


def pick_digest(
    session: Session, settings: Settings, mlist: MailingList, digest_id: int | None
) -> Digest:
    """The given digest, else the list's newest draft, else a freshly composed one."""
    list_slug = mlist.slug
    if digest_id is not None:
        found = session.get(Digest, digest_id)
        if found is None or found.list_id != mlist.id:
            raise NotFound("digest", f"there is no digest {digest_id} of list {list_slug}")
        return found
    draft = session.scalar(
        select(Digest)
        .where(Digest.list_id == mlist.id, Digest.status == DigestStatus.draft)
        .order_by(Digest.id.desc())
        .limit(1)
    )
    if draft is None:
        # Imported here and in test_send, not at the top: the template, Markdown and
        # DKIM modules they need cost the other actions' commands (`sends status`,
        # `sends pause`, ...) 0.45 s of start-up each.
        from newsletter.digests.compose import compose_digest

        draft = compose_digest(session, settings, mlist)
    if draft is None:
        raise Conflict(
            "list", f"{list_slug}: no new stories since the previous digest; nothing to send"
        )
    return draft


def has_readers(session: Session, list_id: int) -> bool:
    """Whether anyone would get a send: a confirmed subscription of an active address
    (the same rule as the ledger's, sending/job.py)."""
    found = session.scalar(
        select(Subscription.id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            Subscription.list_id == list_id,
            Subscription.status == SubscriptionStatus.confirmed,
            Subscriber.status == SubscriberStatus.active,
        )
        .limit(1)
    )
    return found is not None


def _segment(
    session: Session, settings: Settings, mlist: MailingList, slug: str | None
) -> Segment | None:
    """The segment a send targets (of the same list), refused when it selects nobody."""
    if not slug:
        return None
    from newsletter.segments.actions import count_readers, find_segment

    segment = find_segment(session, slug)
    if segment.list_id != mlist.id:
        raise Conflict("segment", f"segment {slug!r} is not a segment of list {mlist.slug}")
    if count_readers(session, settings, segment) == 0:
        raise Conflict(
            "segment", f"segment {slug!r} selects no confirmed subscribers; nothing was sent"
        )
    return segment


def _target(digest: Digest, segment: Segment | None) -> None:
    """Who the digest goes to is what this send asked, not what an earlier one did."""
    digest.segment_id = segment.id if segment is not None else None


def _audit_send(list_slug: str, digest_id: int | None = None, segment: str | None = None) -> str:
    return f"list {list_slug}" + (f" segment {segment}" if segment else "")


@audit.audited("sends.send", _audit_send)
def send(
    session: Session,
    settings: Settings,
    list_slug: str,
    digest_id: int | None = None,
    segment: str | None = None,
) -> Done[Status]:
    """Start sending a digest to every confirmed subscriber of the list, or of one of
    its segments (with NEWSLETTER_SEND_APPROVAL on: ask for it, the send waiting as
    awaiting_approval).

    A list (or segment) nobody would receive is refused before a digest is picked or
    composed, so it uses no stories up (a send to no one would count as sent and
    consume them).
    """
    mlist = find_list(session, list_slug)
    if not has_readers(session, mlist.id):
        raise Conflict(
            "list", f"{list_slug}: no confirmed subscribers to send to; nothing was sent"
        )
    target = _segment(session, settings, mlist, segment)
    digest = pick_digest(session, settings, mlist, digest_id)
    _target(digest, target)
    if settings.send_approval:
        approval.request(session, digest)
        return Done(_with_target(session, digest, target))
    ranges = start_send(session, settings, digest)
    return Done(_with_target(session, digest, target), _batches(digest.id, ranges))


def _with_target(session: Session, digest: Digest, segment: Segment | None) -> Status:
    """The send's status, with its segment and scheduled time when it has them."""
    out = control.send_status(session, digest)
    if segment is not None:
        out["segment"] = segment.slug
    if digest.send_at is not None and digest.status == DigestStatus.scheduled:
        out["send_at"] = digest.send_at.isoformat()
    return out


@audit.audited("sends.approve", lambda send_id, by=None: f"send {send_id}")
def approve(
    session: Session, settings: Settings, send_id: int, by: str | None = None
) -> Done[Status]:
    """Approve a send awaiting approval (not one's own); it starts at once."""
    digest = control.get_digest(session, send_id)
    ranges = approval.approve(session, settings, digest, by)
    return Done(control.send_status(session, digest), _batches(digest.id, ranges))


@audit.audited("sends.reject", lambda send_id: f"send {send_id}")
def reject(session: Session, settings: Settings, send_id: int) -> Done[Status]:
    """Refuse (or take back) a send awaiting approval: its digest is a draft again."""
    digest = control.get_digest(session, send_id)
    approval.withdraw(session, digest)
    session.refresh(digest)
    return Done(control.send_status(session, digest))


@audit.audited("digests.test_send", lambda list_slug, to, digest_id=None: f"list {list_slug}")
def test_send(
    session: Session, settings: Settings, list_slug: str, to: str, digest_id: int | None = None
) -> Done[dict[str, Any]]:
    """The digest once to one address, outside the ledger, exactly as a reader gets it."""
    from newsletter.sending.testsend import test_message
    from newsletter.subscriptions.addresses import normalise_email

    email = normalise_email(to)
    mlist = find_list(session, list_slug)
    digest = pick_digest(session, settings, mlist, digest_id)
    raw, envelope_sender = test_message(settings, mlist, digest, email)
    transport = SmtpTransport(settings.smtp)
    try:
        transport.send(raw, envelope_sender, [email])
    except Exception as exc:  # noqa: BLE001 - any SMTP or socket failure is one line
        raise Unavailable(f"SMTP: {exc.__class__.__name__}: {exc}") from None
    finally:
        transport.close()
    return Done({"digest": digest.id, "to": email, "subject": f"[TEST] {digest.subject}"})


def status(session: Session, settings: Settings, send_id: int) -> Done[Status]:
    return Done(control.send_status(session, control.get_digest(session, send_id)))


def list_sends(session: Session, settings: Settings) -> Done[list[Status]]:
    return Done(control.list_sends(session))


@audit.audited("sends.pause", lambda send_id: f"send {send_id}")
def pause(session: Session, settings: Settings, send_id: int) -> Done[Status]:
    control.operator_pause(session, send_id)
    return Done(status(session, settings, send_id).value, _batches(send_id, []))


@audit.audited("sends.resume", lambda send_id: f"send {send_id}")
def resume(session: Session, settings: Settings, send_id: int) -> Done[Status]:
    ranges = control.operator_resume(session, settings, send_id)
    return Done(status(session, settings, send_id).value, _batches(send_id, ranges))


@audit.audited("sends.cancel", lambda send_id: f"send {send_id}")
def cancel(session: Session, settings: Settings, send_id: int) -> Done[Status]:
    control.cancel(session, send_id)
    return Done(status(session, settings, send_id).value, _batches(send_id, []))


@audit.audited("sends.retry", lambda send_id: f"send {send_id}")
def retry_failed(session: Session, settings: Settings, send_id: int) -> Done[Status]:
    ranges = control.retry_failed(session, settings, send_id)
    return Done(status(session, settings, send_id).value, _batches(send_id, ranges))


@audit.audited(
    "sends.schedule",
    lambda list_slug, digest_id, send_at, segment=None: (
        f"digest {digest_id} at {send_at}" + (f" segment {segment}" if segment else "")
    ),
)
def schedule(
    session: Session,
    settings: Settings,
    list_slug: str,
    digest_id: int | None,
    send_at: str,
    segment: str | None = None,
) -> Done[Status]:
    """Send a draft at a chosen time (`send_at`: ISO 8601; without an offset, in the
    list's time zone), to the list or one of its segments; beat starts it then
    (sending/later.py). Without a digest id: the newest draft, else a fresh one."""
    mlist = find_list(session, list_slug)
    if not has_readers(session, mlist.id):
        raise Conflict("list", f"{list_slug}: no confirmed subscribers to send to")
    at = later.local_time(send_at, mlist.timezone)  # a bad time says so before anything
    target = _segment(session, settings, mlist, segment)
    digest = pick_digest(session, settings, mlist, digest_id)
    _target(digest, target)
    later.schedule(session, digest, at, audit.current().name)
    return Done(_with_target(session, digest, target))


@audit.audited("sends.unschedule", lambda send_id: f"send {send_id}")
def unschedule(session: Session, settings: Settings, send_id: int) -> Done[Status]:
    """Call off a scheduled send before its time: its digest is a draft again."""
    digest = control.get_digest(session, send_id)
    later.unschedule(session, digest)
    return Done(control.send_status(session, digest))
