"""One handling path for every bounce, whichever way it came in.

The bounce-server, the mailbox poller, the provider webhooks, ``bounces ingest`` and the
sending engine's own SMTP refusals all end in :func:`record_bounce`, so the policy lives
in one place and is an explicit state machine over the subscriber's status:

- ``hard``: the subscriber becomes ``bounced`` and the address is suppressed at once;
  the delivery becomes ``bounced``.
- ``soft``: the soft score is recomputed (see :func:`soft_score`); at the limit
  (NEWSLETTER_SOFT_BOUNCE_LIMIT, default 3, within NEWSLETTER_SOFT_BOUNCE_DAYS, default 14)
  the subscriber becomes ``bounced`` and is suppressed.
- ``complaint``: every subscription is unsubscribed, the subscriber becomes
  ``complained`` and is suppressed.
- ``policy``: recorded only. A policy block says our sending is the problem (a listed IP,
  DMARC, content); dropping the reader for it would punish the wrong party. The events
  are counted per receiving domain for the operator (:mod:`newsletter.bounces.report`).
- ``ignore`` (auto-replies, delivery reports): recorded, because an auto-reply proves the
  mailbox is alive and so breaks a run of soft bounces; nothing else happens.

Who the bounce is about: the VERP token names the delivery and so the subscriber; that is
the only trusted link for mail anyone on the internet can send (bounce-server, mailbox).
Matching the failed address in the bounce text to a subscriber is allowed only for input
an operator or an authenticated provider vouches for (``bounces ingest`` of an old mailbox,
webhooks), via ``match_address=True``.

Idempotent: each event carries a fingerprint (delivery, kind, reason, status; or, without
a delivery, subscriber and a reference such as the original Message-ID), unique in the
table, so the same bounce read twice from a mailbox, a re-ingested file or a webhook retry
changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.bounces.classify import classify
from newsletter.bounces.parse import BounceResult
from newsletter.config import Settings
from newsletter.errors import InvalidInput
from newsletter.models import (
    BounceEvent,
    BounceRejection,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Suppression,
    utcnow,
)
from newsletter.subscriptions.addresses import domain_of, email_hash, normalise_email
from newsletter.subscriptions.suppression import suppress
from newsletter.webhooks.events import emit

log = logging.getLogger(__name__)

# Suppression reasons (Suppression.reason, at most 32 characters).
HARD_REASON = "hard-bounce"
SOFT_REASON = "soft-bounce-limit"
COMPLAINT_REASON = "complaint"


@dataclass(frozen=True)
class Handled:
    """What :func:`record_bounce` did: ``action`` is one of ``suppressed``, ``scored``,
    ``unsubscribed``, ``counted`` (policy), ``ignored``, ``duplicate``, ``unmatched``."""

    action: str
    event: BounceEvent | None = None
    subscriber_id: int | None = None


def fingerprint(
    result: BounceResult, delivery_id: int | None, subscriber_id: int | None, ref: str
) -> str:
    """The identity of one bounce, independent of the way it arrived."""
    if delivery_id is not None:
        key = f"d:{delivery_id}:{result.kind}:{result.reason}:{result.status}"
    else:
        key = f"s:{subscriber_id}:{result.kind}:{result.reason}:{result.status}:{ref}"
    return hashlib.sha256(key.encode()).hexdigest()


def find_subscriber(session: Session, address: str | None) -> Subscriber | None:
    """The subscriber with this address, if the bounce names a valid one."""
    if not address:
        return None
    try:
        normal = normalise_email(address)
    except InvalidInput:
        return None
    return session.scalar(select(Subscriber).where(Subscriber.email == normal))


def record_bounce(
    session: Session,
    settings: Settings,
    result: BounceResult,
    *,
    delivery_id: int | None,
    source: str,
    match_address: bool = False,
    ref: str = "",
    now: datetime | None = None,
) -> Handled:
    """Record one recipient's bounce and apply the policy; flushes, never commits.

    ``delivery_id`` comes from a verified VERP token (or the sending engine itself).
    Without one, ``match_address`` allows finding the subscriber by ``result.recipient``.
    ``ref`` distinguishes bounces without a delivery (original Message-ID, provider event
    id) for deduplication.
    """
    now = now or utcnow()
    delivery = session.get(Delivery, delivery_id) if delivery_id is not None else None
    subscriber: Subscriber | None = None
    if delivery is not None and delivery.subscriber_id is not None:
        subscriber = session.get(Subscriber, delivery.subscriber_id)
    elif delivery is None and match_address:
        subscriber = find_subscriber(session, result.recipient)
    if subscriber is None and result.kind != "policy":
        # Unknown delivery (digest deleted) or an erased or never-known address.
        return Handled("unmatched")

    did = delivery.id if delivery is not None else None
    sid = subscriber.id if subscriber is not None else None
    mark = fingerprint(result, did, sid, ref or result.original_message_id)
    event = _add_event(session, result, did, sid, source, now, mark)
    if event is None:
        return Handled("duplicate", subscriber_id=sid)

    action = _apply(session, settings, result, event, delivery, subscriber, now)
    if subscriber is not None and result.kind in ("hard", "soft", "complaint"):
        _emit(session, result, subscriber, delivery, action)
    log.info(
        "bounce %s/%s from %s: delivery %s subscriber %s -> %s",
        result.kind,
        result.reason,
        source,
        did,
        sid,
        action,
    )
    return Handled(action, event, sid)


def _emit(
    session: Session,
    result: BounceResult,
    subscriber: Subscriber,
    delivery: Delivery | None,
    action: str,
) -> None:
    """The webhook event (newsletter/webhooks/): "complained" for a complaint, "bounced"
    for a hard or soft bounce, with what the policy did about it."""
    data: dict[str, object] = {
        "email": subscriber.email,
        "action": action,
        "digest_id": delivery.digest_id if delivery is not None else None,
    }
    if result.kind != "complaint":
        data |= {
            "kind": result.kind,
            "reason": result.reason or "",
            "status": result.status or "",
            "diagnostic": (result.diagnostic or "")[:500],
        }
    emit(session, "complained" if result.kind == "complaint" else "bounced", data)


def _add_event(
    session: Session,
    result: BounceResult,
    delivery_id: int | None,
    subscriber_id: int | None,
    source: str,
    now: datetime,
    mark: str,
) -> BounceEvent | None:
    """Insert the event, or None when one with this fingerprint exists (a duplicate)."""
    if session.scalar(select(BounceEvent.id).where(BounceEvent.fingerprint == mark)):
        return None
    event = BounceEvent(
        delivery_id=delivery_id,
        subscriber_id=subscriber_id,
        kind=result.kind,
        reason=(result.reason or "undefined")[:64],
        status_code=(result.status or None) and result.status[:16],
        diagnostic=(result.diagnostic or None) and result.diagnostic[:2000],
        remote_domain=(result.remote_domain or domain_of(result.recipient) or None),
        source=source[:32],
        created_at=now,
        fingerprint=mark,
    )
    try:
        with session.begin_nested():  # a concurrent twin inserted first: not an error
            session.add(event)
    except IntegrityError:
        return None
    return event


def record_system_bounce(
    session: Session,
    settings: Settings,
    result: BounceResult,
    *,
    kind: str,
    ident: int,
    source: str,
    ref: str = "",
    now: datetime | None = None,
) -> Handled:
    """A bounce of mail outside the ledger: a confirmation (kind "c", the subscription id)
    or a test send ("t", the digest id). Counted as an event, never acted on.

    Whoever typed an address into the form need not own it, so a bounced confirmation
    suppresses nobody and changes no status: the request simply stays unconfirmed and
    is purged with the others. A test send goes to the operator's own address.
    """
    now = now or utcnow()
    subscriber_id = None
    if kind == "c":
        subscriber_id = session.scalar(
            select(Subscription.subscriber_id).where(Subscription.id == ident)
        )
    what = "confirmation" if kind == "c" else "test"
    mark = fingerprint(result, None, subscriber_id, f"{what}:{ident}:{ref}")
    event = _add_event(session, result, None, subscriber_id, f"{source}:{what}", now, mark)
    if event is None:
        return Handled("duplicate", subscriber_id=subscriber_id)
    log.info("bounce %s/%s of a %s mail from %s: counted", result.kind, result.reason, what, source)
    return Handled("counted", event, subscriber_id)


def _apply(
    session: Session,
    settings: Settings,
    result: BounceResult,
    event: BounceEvent,
    delivery: Delivery | None,
    subscriber: Subscriber | None,
    now: datetime,
) -> str:
    if result.kind == "policy" or subscriber is None:
        return "counted"
    if result.kind == "ignore":
        return "ignored"
    if result.kind == "hard":
        if delivery is not None:
            delivery.status = DeliveryStatus.bounced
            delivery.updated_at = now
        _suppress(session, settings, subscriber, SubscriberStatus.bounced, HARD_REASON)
        return "suppressed"
    if result.kind == "complaint":
        session.execute(
            update(Subscription)
            .where(
                Subscription.subscriber_id == subscriber.id,
                Subscription.status != SubscriptionStatus.unsubscribed,
            )
            .values(status=SubscriptionStatus.unsubscribed, unsubscribed_at=now)
            .execution_options(synchronize_session="fetch")
        )
        _suppress(session, settings, subscriber, SubscriberStatus.complained, COMPLAINT_REASON)
        return "unsubscribed"
    # soft
    session.flush()
    score = soft_score(session, settings, subscriber.id, now)
    subscriber.bounce_score = score
    if score >= settings.soft_bounce_limit:
        _suppress(session, settings, subscriber, SubscriberStatus.bounced, SOFT_REASON)
        return "suppressed"
    return "scored"


_RANK = {
    SubscriberStatus.active: 0,
    SubscriberStatus.suppressed: 1,
    SubscriberStatus.bounced: 2,
    SubscriberStatus.complained: 3,
}


def _suppress(
    session: Session, settings: Settings, subscriber: Subscriber, status: str, reason: str
) -> None:
    """Suppress the address; a status never moves down (complained stays complained)."""
    if _RANK.get(SubscriberStatus(status), 0) >= _RANK.get(_status(subscriber), 0):
        subscriber.status = status
    suppress(session, settings, subscriber.email, reason)


def _status(subscriber: Subscriber) -> SubscriberStatus:
    try:
        return SubscriberStatus(subscriber.status)
    except ValueError:
        return SubscriberStatus.active


def soft_score(session: Session, settings: Settings, subscriber_id: int, now: datetime) -> int:
    """Soft bounces in a row, within the window, that no successful delivery interrupts.

    Why computed from the ledger instead of a counter reset at send time: with a relay
    every message is "accepted", and the DSN comes minutes or days later, so a reset on
    acceptance would wipe the score before each bounce arrives and nobody would ever
    reach the limit. Instead the score walks the subscriber's deliveries backwards from
    the newest soft-bounced one: each soft-bounced delivery in the window counts once (a
    delay notice and the final failure of one message are one), a delivery that was sent
    and drew no failure (or only an auto-reply) ends the run, and deliveries still in
    flight or refused for policy reasons are skipped. Recomputing on every event makes
    DSNs that arrive out of order come out right. Soft events without a delivery (address
    matched) add one each.
    """
    return soft_scores(session, settings, [subscriber_id], now)[subscriber_id]


def soft_scores(
    session: Session, settings: Settings, subscriber_ids: Iterable[int], now: datetime
) -> dict[int, int]:
    """:func:`soft_score` of many subscribers in three queries whatever their number (the
    bounce-server scores a whole group at once: three round trips per soft bounce were
    a third of its statements)."""
    scores = dict.fromkeys(subscriber_ids, 0)
    if not scores:
        return scores
    since = now - timedelta(days=settings.soft_bounce_days)
    soft = session.execute(
        select(BounceEvent.subscriber_id, BounceEvent.delivery_id).where(
            BounceEvent.subscriber_id.in_(list(scores)),
            BounceEvent.kind == "soft",
            BounceEvent.created_at >= since,
        )
    ).all()
    soft_deliveries: dict[int, set[int]] = {}
    for sid, did in soft:
        if sid is None:  # not asked for: the query names its subscribers
            continue
        if did is None:
            scores[sid] += 1  # loose: no delivery to walk from
        else:
            soft_deliveries.setdefault(sid, set()).add(did)
    if not soft_deliveries:
        return scores
    # Each subscriber's newest deliveries up to its newest soft-bounced one, newest first.
    ceiling = case(
        {sid: max(ds) for sid, ds in soft_deliveries.items()}, value=Delivery.subscriber_id
    )
    rank = (
        func.row_number()
        .over(partition_by=Delivery.subscriber_id, order_by=Delivery.id.desc())
        .label("rank")
    )
    recent = (
        select(Delivery.id, Delivery.subscriber_id, Delivery.status, rank)
        .where(Delivery.subscriber_id.in_(list(soft_deliveries)), Delivery.id <= ceiling)
        .subquery()
    )
    rows = session.execute(
        select(recent.c.id, recent.c.subscriber_id, recent.c.status)
        .where(recent.c.rank <= settings.soft_bounce_limit * 20)
        .order_by(recent.c.subscriber_id, recent.c.id.desc())
    ).all()
    failed = set(
        session.scalars(
            select(BounceEvent.delivery_id).where(
                BounceEvent.delivery_id.in_([r.id for r in rows]), BounceEvent.kind != "ignore"
            )
        )
    )
    ended: set[int] = set()
    for row in rows:
        sid = row.subscriber_id
        if sid in ended:
            continue
        if row.id in soft_deliveries[sid]:
            scores[sid] += 1
        elif row.id in failed:
            continue  # policy refusal or a soft bounce older than the window
        elif row.status == DeliveryStatus.sent:
            ended.add(sid)  # a delivery that went through: the run is over
    return scores


def reset_soft_score(session: Session, subscriber_ids: Iterable[int]) -> None:
    """Shown score back to 0 after successful deliveries (for the sending engine).

    The suppression decision does not depend on it (see :func:`soft_score`), so calling
    this on SMTP acceptance is safe and only keeps ``bounce_score`` honest for display.
    """
    ids = list(subscriber_ids)
    if ids:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(ids), Subscriber.bounce_score != 0)
            .values(bounce_score=0)
            .execution_options(synchronize_session=False)
        )


def smtp_refusal(recipient: str, code: int, reply: str) -> BounceResult:
    """A BounceResult for a recipient refused during our own SMTP transaction.

    A 5xx is a hard bounce at once unless the reply says it is a policy refusal (our IP
    or content, not the address) or a full mailbox; a 4xx is soft.
    """
    from newsletter.bounces.classify import find_status

    status = find_status(reply) or f"{str(code)[0]}.0.0"
    kind, reason = classify(status, f"{code} {reply}")
    if code >= 500 and kind == "soft" and reason == "undefined":
        kind = "hard"
    if code < 500 and kind == "hard":
        kind = "soft"
    return BounceResult(
        recipient=recipient,
        kind=kind,
        reason=reason,
        status=status,
        diagnostic=f"{code} {reply}".strip(),
        remote_domain=domain_of(recipient),
    )


def record_send_refusal(
    session: Session, settings: Settings, delivery_id: int, recipient: str, code: int, reply: str
) -> Handled:
    """Entry point for the sending engine: a refusal at RCPT/DATA time, same policy path."""
    return record_bounce(
        session,
        settings,
        smtp_refusal(recipient, code, reply),
        delivery_id=delivery_id,
        source="send",
    )


def record_rejection(session: Session, source: str, reason: str) -> None:
    """Count refused bounce input (forged token, malformed message, bad signature).

    Callers use a session of its own, so the count survives the refused work's rollback.
    """
    log.warning("bounce input refused from %s: %s", source, reason)
    session.add(BounceRejection(source=source[:32], reason=reason[:64]))


def unsuppress(session: Session, settings: Settings, email: str) -> bool:
    """Lift a suppression: the operator knows the address works again.

    The subscriber becomes active with a zero score. Subscriptions a complaint ended stay
    unsubscribed: only the reader can ask to come back.
    """
    address = normalise_email(email)
    digest = email_hash(address, settings.secret)
    row = session.scalar(select(Suppression).where(Suppression.email_hash == digest))
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    changed = row is not None
    if row is not None:
        session.delete(row)
    if subscriber is not None and subscriber.status != SubscriberStatus.active:
        subscriber.status = SubscriberStatus.active
        subscriber.bounce_score = 0
        changed = True
    return changed
