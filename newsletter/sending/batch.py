"""One batch: claim a range of the ledger, send it, fold the outcomes in one write.

Claiming is one UPDATE that moves the range's due rows to `sending` under a fresh
token, so two workers (or a task the broker delivered twice) never both own a row.
Rows still `sending` under a claim older than SEND_LEASE_SECONDS belong to a dead
worker: they are taken over, and the journal says which of them were accepted already,
so those are recorded as sent without a second message.

Per message the cost is a byte join, an optional signature, one SMTP round trip on the
kept connection and one journal append; the ledger is written once per batch (and at
most every few seconds when a rate cap slows the batch down, which also renews the
claim), never once per message.

One round trip: with PIPELINING the next row's MAIL FROM/RCPT TO/DATA travel with this
row's content (transport.PooledTransport.deliver). The order on the wire stays
"content i, reply 250, journal append i, content i+1", so the journal still holds every
accept before the next message can be on that connection.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, cast, func, literal, or_, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.mail.fastpath import DigestTemplate, Recipient
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
    utcnow,
)
from newsletter.sending import control
from newsletter.sending.context import WorkerContext, context
from newsletter.sending.job import OPEN, Range
from newsletter.sending.transport import SmtpUnavailable
from newsletter.subscriptions.addresses import domain_of

log = logging.getLogger(__name__)
FLUSH_SECONDS = 5.0
CONTROL_SECONDS = 1.0
_T = Delivery.__table__


@dataclass
class BatchResult:
    sent: int = 0
    bounced: int = 0
    deferred: int = 0
    failed: int = 0
    retry_in: float | None = None  # run this range again after so many seconds
    enqueue: list[Range] = field(default_factory=list)  # ranges to start (auto-resume)


@dataclass
class _Row:
    id: int
    claim: str
    attempts: int
    email: str | None
    name: str
    subscription_id: int | None
    eligible: bool


@dataclass
class _Ledger:
    """Outcomes not yet folded into the database."""

    sent: list[int] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)
    bounced: list[tuple[int, int, int, str]] = field(default_factory=list)  # id, sub, code, reply

    def __bool__(self) -> bool:
        return bool(self.sent or self.other)


def run_batch(settings: Settings, digest_id: int, lo: int, hi: int) -> BatchResult:
    ctx = context(settings)
    result = BatchResult()
    with session_scope() as session:
        state = session.execute(
            select(Digest.status, Digest.paused_by).where(Digest.id == digest_id)
        ).first()
        if state is None:
            return result
        if state.status == DigestStatus.paused and state.paused_by == "outage":
            return _probe(session, settings, ctx, digest_id, result)
        if state.status != DigestStatus.sending:
            return result
    token = uuid.uuid4().hex[:16]
    rows = _claim(settings, digest_id, lo, hi, token)
    if rows:
        _send(settings, ctx, digest_id, rows, token, result)
    with session_scope() as session:
        _finish(session, settings, ctx, digest_id, lo, hi, result)
    return result


def _probe(
    session: Session, settings: Settings, ctx: WorkerContext, digest_id: int, result: BatchResult
) -> BatchResult:
    """A send paused by an SMTP outage resumes by itself once the server answers."""
    try:
        ctx.transport.ensure_connected()
    except SmtpUnavailable as exc:
        session.execute(
            update(Digest)
            .where(Digest.id == digest_id)
            .values(progress_at=utcnow(), pause_reason=f"SMTP server unreachable: {exc}")
        )
        result.retry_in = settings.send_probe_seconds
        return result
    result.enqueue = control.resume(session, settings, digest_id, only_outage=True)
    return result


def _claim(settings: Settings, digest_id: int, lo: int, hi: int, token: str) -> list[_Row]:
    now = utcnow()
    stale = now - timedelta(seconds=settings.send_lease_seconds)
    in_range = (_T.c.digest_id == digest_id, _T.c.id >= lo, _T.c.id <= hi)
    with session_scope() as session:
        session.execute(
            _T.update()
            .where(*in_range, _T.c.status == DeliveryStatus.sending, _T.c.claimed_at < stale)
            .values(claim=token + "r", claimed_at=now)
        )
        session.execute(
            _T.update()
            .where(
                *in_range,
                or_(
                    _T.c.status == DeliveryStatus.queued,
                    (_T.c.status == DeliveryStatus.deferred)
                    & or_(_T.c.next_attempt_at.is_(None), _T.c.next_attempt_at <= now),
                ),
            )
            .values(
                status=DeliveryStatus.sending,
                claim=token,
                claimed_at=now,
                attempts=_T.c.attempts + 1,
            )
        )
    with session_scope() as session:
        list_id = session.scalar(select(Digest.list_id).where(Digest.id == digest_id))
        query = (
            select(
                Delivery.id,
                Delivery.claim,
                Delivery.attempts,
                Subscriber.email,
                Subscriber.name,
                Subscriber.status,
                Subscription.id,
                Subscription.status,
            )
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .outerjoin(
                Subscription,
                (Subscription.subscriber_id == Delivery.subscriber_id)
                & (Subscription.list_id == list_id),
            )
            .where(*in_range, Delivery.claim.in_((token, token + "r")))
            .order_by(Delivery.id)
        )
        return [
            _Row(
                id=r[0],
                claim=r[1],
                attempts=r[2],
                email=r[3],
                name=r[4] or "",
                subscription_id=r[6],
                eligible=r[3] is not None
                and r[5] == SubscriberStatus.active
                and r[7] == SubscriptionStatus.confirmed,
            )
            for r in session.execute(query)
        ]


def _template(ctx: WorkerContext, settings: Settings, digest_id: int) -> DigestTemplate:
    found = ctx.templates.get(digest_id)
    if found is None:
        with session_scope() as session:
            digest = session.get(Digest, digest_id)
            assert digest is not None
            mlist = session.get(MailingList, digest.list_id)
            assert mlist is not None
            found = DigestTemplate(
                settings=settings,
                digest_id=digest_id,
                list_slug=mlist.slug,
                list_name=mlist.name,
                subject=digest.subject,
                text=digest.text,
                html=digest.html,
                dkim_keys=ctx.keys,
            )
        ctx.remember(found)
    return found


def _send(
    settings: Settings,
    ctx: WorkerContext,
    digest_id: int,
    rows: list[_Row],
    token: str,
    result: BatchResult,
) -> None:
    template = _template(ctx, settings, digest_id)
    journal = ctx.journal(digest_id)
    ledger = _Ledger()
    recovered = [r.id for r in rows if r.claim != token]
    already = journal.accepted(recovered) if recovered else set()
    pending = []
    for row in rows:
        if row.id in already:
            ledger.sent.append(row.id)
            result.sent += 1
        elif not row.eligible:
            reason = "subscriber erased" if row.email is None else "unsubscribed or suppressed"
            _other(ledger, row, "failed", None, f"not sent: {reason} before sending", None, 0)
            result.failed += 1
        else:
            pending.append(row)
    last_flush = last_control = time.monotonic()
    transport = ctx.transport
    count = len(pending)
    primed: tuple[int, str] | None = None  # (delivery id, VERP sender) made for the next row
    for index, row in enumerate(pending):
        now_m = time.monotonic()
        if now_m - last_control >= CONTROL_SECONDS:
            last_control = now_m
            status = _digest_status(digest_id)
            if status != DigestStatus.sending:
                transport.abandon()
                _release(ledger, pending[index:], cancelled=status == DigestStatus.cancelled)
                break
        if ledger and now_m - last_flush >= FLUSH_SECONDS:
            renew = [r.id for r in pending[index:]]
            _fold(settings, template, digest_id, ledger, journal, (token, token + "r"), renew)
            ledger = _Ledger()
            last_flush = now_m
        assert row.email is not None and row.subscription_id is not None
        domain = domain_of(row.email)
        counted = 1 if row.claim == token else 0
        until = ctx.domains.blocked_until(domain)
        if until is not None:
            when = datetime.fromtimestamp(until, utcnow().tzinfo)
            reply = f"held back: {domain} answered 4xx recently"
            _other(ledger, row, "deferred", None, reply, when, -counted)
            result.deferred += 1
            transport.abandon()  # its envelope may have been primed with the last message
            continue
        ctx.limiter.acquire()
        ctx.domains.acquire(domain)
        recipient = Recipient(row.id, row.email, row.name, row.subscription_id)
        wire = template.render_wire(recipient)
        # The next message's envelope goes out with this one's content (PIPELINING):
        # one round trip per message; its content waits for this accept's journal entry.
        # Not for a backed-off domain: its server must not even be asked RCPT TO.
        after = pending[index + 1] if index + 1 < count else None
        sender = primed[1] if primed and primed[0] == row.id else template.envelope_sender(row.id)
        then = primed = None
        if after is not None and after.email:
            if ctx.domains.blocked_until(domain_of(after.email)) is None:
                primed = (after.id, template.envelope_sender(after.id))
                then = (primed[1], after.email)
        try:
            attempt = transport.deliver(wire, sender, row.email, then)
        except SmtpUnavailable as exc:
            _release(ledger, pending[index:], cancelled=False)
            _fold(settings, template, digest_id, ledger, journal, (token, token + "r"))
            ledger = _Ledger()
            with session_scope() as session:
                control.pause(session, digest_id, "outage", f"SMTP server unreachable: {exc}")
            log.warning("send %s paused: SMTP server unreachable", digest_id)
            result.retry_in = settings.send_probe_seconds
            return
        if attempt.status == "sent":
            ctx.domains.success(domain)
            try:
                journal.record(row.id)
            except Exception:  # noqa: BLE001 - the journal is down: write the ledger now
                log.warning("journal unavailable; writing the ledger at once", exc_info=True)
                ledger.sent.append(row.id)
                _fold(settings, template, digest_id, ledger, None, (token, token + "r"))
                ledger = _Ledger()
                result.sent += 1
                continue
            ledger.sent.append(row.id)
            result.sent += 1
        elif attempt.status == "bounced":
            _other(ledger, row, "bounced", attempt.code, attempt.reply, None, 0)
            ledger.bounced.append((row.id, -1, attempt.code or 550, attempt.reply or ""))
            result.bounced += 1
        elif attempt.status == "deferred":
            if attempt.code is not None and 400 <= attempt.code < 500:
                ctx.domains.temporary_failure(domain)
            if row.attempts >= settings.send_max_attempts:
                reply = f"gave up after {row.attempts} attempts: {attempt.reply}"
                _other(ledger, row, "failed", attempt.code, reply, None, 0)
                result.failed += 1
            else:
                delay = settings.send_retry_base_seconds * 2 ** max(0, row.attempts - 1)
                when = utcnow() + timedelta(seconds=delay)
                _other(ledger, row, "deferred", attempt.code, attempt.reply, when, 0)
                result.deferred += 1
        else:
            _other(ledger, row, "failed", attempt.code, attempt.reply, None, 0)
            result.failed += 1
    transport.abandon()
    _fold(settings, template, digest_id, ledger, journal, (token, token + "r"))


def _other(
    ledger: _Ledger,
    row: _Row,
    status: str,
    code: int | None,
    reply: str | None,
    next_at: datetime | None,
    attempts_delta: int,
) -> None:
    ledger.other.append(
        {
            "b_id": row.id,
            "b_status": status,
            "b_code": code,
            "b_reply": reply,
            "b_next": next_at,
            "b_delta": attempts_delta,
        }
    )


def _release(ledger: _Ledger, rows: list[_Row], *, cancelled: bool) -> None:
    """Give unsent rows back (paused) or close them (cancelled)."""
    for row in rows:
        if cancelled:
            _other(ledger, row, "failed", None, "cancelled by the operator", None, 0)
        else:
            _other(ledger, row, "queued", None, None, None, -1 if row.claim[-1:] != "r" else 0)


def _digest_status(digest_id: int) -> str | None:
    with session_scope() as session:
        return session.scalar(select(Digest.status).where(Digest.id == digest_id))


def _fold(
    settings: Settings,
    template: DigestTemplate,
    digest_id: int,
    ledger: _Ledger,
    journal: Any,
    claims: tuple[str, str],
    renew: list[int] | None = None,
) -> None:
    """One transaction for everything the batch learnt since the last fold."""
    if journal is not None:
        try:
            journal.sync()  # every accept below is in the journal before the ledger says so
        except Exception:  # noqa: BLE001 - journal gone (Redis restarted): the ledger is the record
            log.warning("journal unavailable; writing the ledger without it", exc_info=True)
            journal = None
    now = utcnow()
    with session_scope() as session:
        if ledger.sent:
            message_id = (
                literal(template.message_id_prefix)
                + cast(_T.c.id, String)
                + literal(template.message_id_suffix)
            )
            session.execute(
                _T.update()
                .where(_T.c.id.in_(ledger.sent), _T.c.claim.in_(claims))
                .values(
                    status=DeliveryStatus.sent,
                    smtp_code=250,
                    smtp_reply=None,
                    next_attempt_at=None,
                    message_id=message_id,
                    claim=None,
                    updated_at=now,
                )
            )
        if ledger.other:
            session.execute(
                _T.update()
                .where(
                    _T.c.id == bindparam("b_id"),
                    (_T.c.claim == claims[0]) | (_T.c.claim == claims[1]),
                )
                .values(
                    status=bindparam("b_status"),
                    smtp_code=bindparam("b_code"),
                    smtp_reply=bindparam("b_reply"),
                    next_attempt_at=bindparam("b_next"),
                    attempts=_T.c.attempts + bindparam("b_delta"),
                    claim=None,
                    updated_at=now,
                ),
                ledger.other,
            )
        if ledger.bounced:
            _record_bounces(session, settings, ledger.bounced)
        # Rows still being sent keep their claim fresh: a slow (rate-capped) batch is alive.
        if renew:
            session.execute(
                _T.update()
                .where(_T.c.id.in_(renew), _T.c.claim.in_(claims), _T.c.status == "sending")
                .values(claimed_at=now)
            )
        session.execute(update(Digest).where(Digest.id == digest_id).values(progress_at=now))
    if journal is not None and ledger.sent:
        try:
            journal.forget(ledger.sent)
        except Exception:  # noqa: BLE001 - forgetting is housekeeping only
            log.debug("journal forget failed", exc_info=True)


def _record_bounces(
    session: Session, settings: Settings, bounced: list[tuple[int, int, int, str]]
) -> None:
    """A refusal during our SMTP transaction goes through the bounce policy like a DSN
    (newsletter/bounces/handling.py): a 5xx for the address suppresses at once, a policy
    refusal (our IP or content) keeps the reader and is counted per domain."""
    from newsletter.bounces.handling import record_send_refusal

    emails = dict(
        session.execute(
            select(Delivery.id, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id.in_([b[0] for b in bounced]))
        )
        .tuples()
        .all()
    )
    for delivery_id, _, code, reply in bounced:
        email = emails.get(delivery_id, "")
        record_send_refusal(session, settings, delivery_id, email, code, reply)


def _finish(
    session: Session,
    settings: Settings,
    ctx: WorkerContext,
    digest_id: int,
    lo: int,
    hi: int,
    result: BatchResult,
) -> None:
    if result.bounced:
        control.check_bounce_rate(session, settings, digest_id)
    open_left = session.scalar(
        select(Delivery.id)
        .where(Delivery.digest_id == digest_id, Delivery.status.in_(OPEN))
        .limit(1)
    )
    if open_left is None:
        done = _mark_sent(session, digest_id)
        if done:
            try:
                ctx.journal(digest_id).drop()
            except Exception:  # noqa: BLE001 - housekeeping only
                log.debug("journal drop failed", exc_info=True)
        return
    if result.retry_in is not None:
        return
    next_at = session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.digest_id == digest_id,
            Delivery.id >= lo,
            Delivery.id <= hi,
            Delivery.status == DeliveryStatus.deferred,
        )
    )
    if next_at is not None:
        result.retry_in = max(0.05, (next_at - utcnow()).total_seconds())


def _mark_sent(session: Session, digest_id: int) -> int:
    """Finish the send if its whole ledger is written and nothing in it is open.

    A send whose ledger is incomplete (job.complete_ledger has not run) is not done: its
    rest is not written yet. The row lock comes first because complete_ledger holds it
    while inserting: on PostgreSQL an UPDATE that waited for it would re-check only the
    digest row, see ledger_complete true and miss the new queued rows; once we hold the
    lock, the UPDATE's own snapshot sees them. On SQLite (no FOR UPDATE) the single
    UPDATE runs under the write lock and sees every committed row.
    """
    session.execute(select(Digest.id).where(Digest.id == digest_id).with_for_update())
    still_open = (
        select(Delivery.id)
        .where(Delivery.digest_id == digest_id, Delivery.status.in_(OPEN))
        .exists()
    )
    return int(
        session.execute(
            update(Digest)
            .where(
                Digest.id == digest_id,
                Digest.status == DigestStatus.sending,
                Digest.ledger_complete.is_(True),
                ~still_open,
            )
            .values(status=DigestStatus.sent, finished_at=utcnow())
        ).rowcount
    )
