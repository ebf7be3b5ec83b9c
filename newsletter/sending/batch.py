"""One batch: claim a range of the ledger, send it, fold the outcomes in one write.

Claiming is one UPDATE that moves the range's due rows to `sending` under a fresh
`Claim`, so two workers (or a task the broker delivered twice) never both own a row.
A claim is alive while its batch's `Heartbeat` (a daemon thread started by the batch,
stopped in a finally) renews its rows' claimed_at every SEND_HEARTBEAT_SECONDS (5 s).
The heartbeat is independent of the send loop, which can block in one SMTP call for up
to its 30 s timeout, so a live batch never loses its rows however slow its server is.
Rows still `sending` under a claim not renewed for SEND_LEASE_SECONDS (15 s) belong to
a dead worker: they are taken over, and the journal says which of them were accepted
already, so those are recorded as sent without a second message. The liveness mark is
claimed_at itself (one UPDATE of the batch's id range, on the primary key, per beat),
not a Redis key: it works with every broker, and the takeover and the dead-claim check
(job.recover_dead_claims) read it in the same statement that takes the rows.

One owner: a batch whose heartbeat could not renew its claim for most of the lease (the
database is unreachable from it) stops sending before its claim can lapse
(`Heartbeat.lapsing`, asked before each message), so a takeover never overlaps a batch
that still sends; the one exception is the message on the wire of a batch whose SMTP
call blocked past the lease while its database was unreachable too: at most that one
message may go twice, as after a SIGKILL. Its later fold writes nothing it no longer
owns (`_fold` matches the claim). A batch that fails on a database or broker error is
run again with the same claim token (workers.tasks.send_batch): `_claim` then takes its
own rows back at once, as a takeover (the journal says what it had accepted), instead
of waiting for the lease.

Per message the cost is a byte join, an optional signature, one SMTP round trip on one
of the worker's kept connections (many in flight at once: `_Sender`) and one journal
append; the ledger is written once per batch (and at
most every few seconds when a rate cap slows the batch down, which also renews the
claim), never once per message.

Crash safety rests on two orders, kept by the parts below:

* journal before ledger: an accept is appended to the journal (`Journal.record`) as
  soon as the server said 250, and `_fold` syncs the journal before the ledger says
  sent, so a worker killed between the two leaves a fact a takeover can read;
* one message per connection in flight: with PIPELINING the next row's envelope travels
  with this row's content (aiosmtp.AsyncConnection), but its content only after this
  accept's journal entry, so the order on the wire stays "content i, reply 250, journal
  append i, content i+1".

The parts: `Batch` (the steps run_batch takes, in order: admit, take, send, finish),
`Claim` (the token a batch marks its rows with), `outcome` (pure: an SMTP Attempt and
the row → the `Change` the ledger gets), `Ledger` (the changes not folded yet) and
`_fold` (one transaction for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.mail.fastpath import DigestTemplate, Recipient
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    DigestVariant,
    MailingList,
    utcnow,
)
from newsletter.sending import control, lifecycle
from newsletter.sending.aiosmtp import AsyncConnection
from newsletter.sending.connections import ConnectionSet
from newsletter.sending.context import WorkerContext, context
from newsletter.sending.ledger import (
    Change,
    Claim,
    Ledger,
    Range,
    Row,
    _claim,
    _fold,
    renew_claim,
)
from newsletter.sending.lifecycle import OPEN, PausedBy
from newsletter.sending.transport import Attempt, Envelope, SmtpUnavailable
from newsletter.subscriptions.addresses import domain_of

log = logging.getLogger(__name__)
FLUSH_SECONDS = 5.0
CONTROL_SECONDS = 1.0
ACQUIRE_SECONDS = 0.25  # a lane without a connection asks again (doubling, to 2 s)


@dataclass
class BatchResult:
    sent: int = 0
    bounced: int = 0
    deferred: int = 0
    failed: int = 0
    retry_in: float | None = None  # run this range again after so many seconds
    enqueue: list[Range] = field(default_factory=list)  # ranges to start (auto-resume)

    def tally(self, status: DeliveryStatus) -> None:
        if status == DeliveryStatus.sent:
            self.sent += 1
        elif status == DeliveryStatus.bounced:
            self.bounced += 1
        elif status == DeliveryStatus.deferred:
            self.deferred += 1
        elif status == DeliveryStatus.failed:
            self.failed += 1


def outcome(attempt: Attempt, row: Row, settings: Settings, now: datetime) -> Change:
    """The ledger change for one SMTP attempt (pure: no I/O, no clock but `now`).

    Accepted → sent; a 5xx to RCPT, DATA or the content → bounced (and the bounce
    policy); temporary → deferred
    with exponential backoff, or failed once SEND_MAX_ATTEMPTS were made; else failed.
    """
    if attempt.status == "sent":
        return Change(row.id, DeliveryStatus.sent, attempt.code)
    if attempt.status == "bounced":
        return Change(row.id, DeliveryStatus.bounced, attempt.code, attempt.reply, bounce=True)
    if attempt.status == "deferred":
        if row.attempts >= settings.send_max_attempts:
            reply = f"gave up after {row.attempts} attempts: {attempt.reply}"
            return Change(row.id, DeliveryStatus.failed, attempt.code, reply)
        delay = settings.send_retry_base_seconds * 2.0 ** max(0, row.attempts - 1)
        when = now + timedelta(seconds=delay)
        return Change(row.id, DeliveryStatus.deferred, attempt.code, attempt.reply, when)
    return Change(row.id, DeliveryStatus.failed, attempt.code, attempt.reply)


def held_back(row: Row, domain: str, until: datetime) -> Change:
    """Not tried: its domain is backed off. The attempt the claim counted is given back."""
    reply = f"held back: {domain} answered 4xx recently"
    return Change(row.id, DeliveryStatus.deferred, None, reply, until, -row.counted)


def not_eligible(row: Row) -> Change:
    reason = "subscriber erased" if row.email is None else "unsubscribed or suppressed"
    return Change(row.id, DeliveryStatus.failed, None, f"not sent: {reason} before sending")


def released(row: Row, *, cancelled: bool) -> Change:
    """An unsent row given back (paused: queued again, uncounted) or closed (cancelled)."""
    if cancelled:
        return Change(row.id, DeliveryStatus.failed, None, "cancelled by the operator")
    return Change(row.id, DeliveryStatus.queued, attempts_delta=-row.counted)


class _Halted(Exception):
    """A lane waiting for the rate caps saw the send stop: its row was not sent."""


class ClaimLapsing(Exception):
    """The heartbeat could not renew the claim for most of the lease: stop sending now,
    before another worker may take the rows over (raised out of the batch; the task runs
    it again with the same claim)."""


class Heartbeat:
    """Renews a claim's liveness (claimed_at of its rows still `sending`) every
    SEND_HEARTBEAT_SECONDS from a daemon thread, whatever the send loop is blocked in.

    Bounded to the batch's id range, so each beat is one primary-key range UPDATE. A
    failed beat (database down) is logged and tried again at the next; `lapsing` tells
    the send loop when the last good renewal is older than two thirds of the lease.
    """

    def __init__(self, settings: Settings, digest_id: int, lo: int, hi: int, claim: Claim):
        self.lease = settings.send_lease_seconds
        self.every = min(settings.send_heartbeat_seconds, self.lease / 3)
        self.renewal = (digest_id, lo, hi, claim)
        self.renewed = time.monotonic()  # the claim was made (or taken back) just now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        self.renewed = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="claim-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.every + 5)
            self._thread = None

    def beat(self) -> None:
        started = time.monotonic()
        renew_claim(*self.renewal)  # by primary key, as the claim itself
        self.renewed = started

    def lapsing(self) -> bool:
        return time.monotonic() - self.renewed > self.lease * 2 / 3

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - the next beat tries again; lapsing() guards
                log.warning("claim heartbeat failed", exc_info=True)


def run_batch(
    settings: Settings, digest_id: int, lo: int, hi: int, claim: Claim | None = None
) -> BatchResult:
    return Batch(settings, digest_id, lo, hi, claim=claim).run()


class Batch:
    """One run of the range [lo, hi], step by step (run_batch takes them in order)."""

    def __init__(
        self,
        settings: Settings,
        digest_id: int,
        lo: int,
        hi: int,
        ctx: WorkerContext | None = None,
        claim: Claim | None = None,
    ) -> None:
        self.settings = settings
        self.digest_id = digest_id
        self.lo = lo
        self.hi = hi
        self.ctx = ctx or context(settings)
        # A run again of a failed batch passes its claim: its rows are taken back at once.
        self.resumed = claim is not None
        self.claim = claim or Claim.new()
        self.result = BatchResult()
        self.rows: list[Row] = []
        self.released = False  # unsent rows were given back because the send paused
        # Batches of this send still wait (queued rows): the context keeps its connections
        # and its place in the split for the next one, which usually follows at once.
        self.more = False
        self.heartbeat: Heartbeat | None = None

    def run(self) -> BatchResult:
        """admit, take, send (with the claim's heartbeat running), finish."""
        if not self.admit():
            return self.result
        self.take()
        if self.rows:
            self.heartbeat = Heartbeat(
                self.settings, self.digest_id, self.lo, self.hi, self.claim
            ).start()
        try:
            self.send()
        finally:
            if self.heartbeat is not None:
                self.heartbeat.stop()
        result = self.finish()
        if not self.more:
            self.ctx.stop_sending()
        return result

    def admit(self) -> bool:
        """Is there anything to do? A send paused by an outage is probed instead."""
        with session_scope() as session:
            state = session.execute(
                select(Digest.status, Digest.paused_by).where(Digest.id == self.digest_id)
            ).first()
            if state is None:
                return False
            if state.status == DigestStatus.paused and state.paused_by == PausedBy.outage:
                self._probe(session)
                return False
            return bool(state.status == DigestStatus.sending)

    def _probe(self, session: Session) -> None:
        """A send paused by an SMTP outage resumes by itself once the server answers."""
        try:
            self.ctx.transport.ensure_connected()
        except SmtpUnavailable as exc:
            session.execute(
                update(Digest)
                .where(Digest.id == self.digest_id)
                .values(progress_at=utcnow(), pause_reason=f"SMTP server unreachable: {exc}")
            )
            self.result.retry_in = self.settings.send_probe_seconds
            return
        # Not kept: a relay that caps its connections counts this one against the batches.
        self.ctx.transport.close()
        self.result.enqueue = control.resume(
            session, self.settings, self.digest_id, only_outage=True
        )

    def take(self) -> None:
        """Claim the range's due rows (and stale ones of a dead worker)."""
        self.rows = _claim(
            self.settings, self.digest_id, self.lo, self.hi, self.claim, resumed=self.resumed
        )

    def send(self) -> None:
        if self.rows:
            _Sender(self).run()

    def finish(self) -> BatchResult:
        with session_scope() as session:
            self._finish(session)
        return self.result

    def _any_row(self, session: Session, statuses: tuple[DeliveryStatus, ...]) -> int | None:
        return session.scalar(
            select(Delivery.id)
            .where(Delivery.digest_id == self.digest_id, Delivery.status.in_(statuses))
            .limit(1)
        )

    def _finish(self, session: Session) -> None:
        result = self.result
        if result.bounced:
            control.check_bounce_rate(session, self.settings, self.digest_id)
        # A queued row is an open one too: while batches wait, one probe answers both.
        queued_left = self._any_row(session, (DeliveryStatus.queued,))
        open_left = queued_left if queued_left is not None else self._any_row(session, OPEN)
        self.more = queued_left is not None and not self.released and result.retry_in is None
        if open_left is None:
            # Not done if paused meanwhile: the resume finishes it (control.resume).
            if lifecycle.finish_if_done(session, self.digest_id):
                try:
                    self.ctx.journal(self.digest_id).drop()
                except Exception:  # noqa: BLE001 - housekeeping only
                    log.debug("journal drop failed", exc_info=True)
            return
        if self.released and result.retry_in is None:
            # Rows given back because the send paused; if it was resumed before they were
            # queued again, that resume's batches found them still claimed: run again.
            status = session.scalar(select(Digest.status).where(Digest.id == self.digest_id))
            if status == DigestStatus.sending:
                result.enqueue = [(self.lo, self.hi)]
            return
        if result.retry_in is not None:
            return
        next_at = session.scalar(
            select(func.min(Delivery.next_attempt_at)).where(
                Delivery.digest_id == self.digest_id,
                Delivery.id >= self.lo,
                Delivery.id <= self.hi,
                Delivery.status == DeliveryStatus.deferred,
            )
        )
        if next_at is not None:
            result.retry_in = max(0.05, (next_at - utcnow()).total_seconds())


class _Sender:
    """The send step of a batch: its claimed rows over the worker's connections.

    K connection coroutines (ConnectionSet: this process's share, opened as needed) pull
    rows from one queue on the worker's event loop, so a slow connection does not hold
    up the others. Each connection reserves its next row when it sends the current one,
    to prime that row's envelope (never a backed-off domain's) and to make that row's
    message while this reply travels (AsyncConnection.deliver's `ahead`), and journals
    an accept before its next content: one message per connection in flight. A watcher
    asks the operator's word every CONTROL_SECONDS and folds every FLUSH_SECONDS. The
    blocking calls (journal append, fold, status) are short and run on the loop itself.
    """

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.settings = batch.settings
        self.ctx = batch.ctx
        self.result = batch.result
        self.template = _template(batch.ctx, batch.settings, batch.digest_id)
        # Readers a send cancelled part-way reached get the digest without its stories.
        self.variants = {
            n: _template(batch.ctx, batch.settings, batch.digest_id, n)
            for n in {r.variant for r in batch.rows if r.variant}
        }
        self.journal = batch.ctx.journal(batch.digest_id)
        self.order = {row.id: place for place, row in enumerate(batch.rows)}
        self.ledger = Ledger(order=self.order)
        self.queue: deque[Row] = deque()
        self.taken: dict[int, Row] = {}  # rows a connection holds, not settled yet
        self.halt: str | None = None  # why the connections stop: "paused", "cancelled"
        self.error: BaseException | None = None  # a lane's failure, raised after all stop
        self.outage: SmtpUnavailable | None = None

    def run(self) -> None:
        self.queue.extend(self._triage(self.batch.rows))
        if self.queue:
            connections = self.ctx.connections
            connections.renew()
            connections.run(self._send_all(connections))
        if self.error is not None:
            raise self.error
        rest = list(self.queue)
        if self.halt is not None:
            cancelled = self.halt == "cancelled"
            self.ledger.other.extend(released(row, cancelled=cancelled) for row in rest)
            self.batch.released = not cancelled
        elif rest:
            assert self.outage is not None
            self._outage(rest, self.outage)
            return
        self._fold()

    async def _send_all(self, connections: ConnectionSet) -> None:
        await connections.trim()
        watcher = asyncio.ensure_future(self._watch(connections))
        try:
            # Again while rows are left that no lane took (one gave its rows back as the
            # others ran out of work): only a halt or an outage leaves rows unsent.
            while self.queue and self.halt is None and self.outage is None:
                wanted = connections.wanted(len(self.queue))
                if self.settings.send_rate > 0:
                    # A connection carries at least a message a second, so a cap of R a
                    # second needs no more than R: the rest would only hold rows, waiting.
                    wanted = min(wanted, max(1, math.ceil(self.settings.send_rate)))
                lanes = [asyncio.ensure_future(self._lane(connections)) for _ in range(wanted)]
                await asyncio.gather(*lanes)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _watch(self, connections: ConnectionSet) -> None:
        last_flush = last_control = time.monotonic()
        while True:
            await asyncio.sleep(min(0.1, CONTROL_SECONDS))
            now_m = time.monotonic()
            try:
                if now_m - last_control >= CONTROL_SECONDS:
                    last_control = now_m
                    self._control()
                if self.ledger and now_m - last_flush >= FLUSH_SECONDS:
                    last_flush = now_m
                    self._fold(renew=[r.id for r in self.queue] + list(self.taken))
                    connections.renew()
            except Exception as exc:  # noqa: BLE001 - a database error stops the batch
                self._fail(exc)
                return

    def _control(self) -> None:
        """The operator's word: paused or cancelled, the connections stop and the
        unsent rows are given back (or closed)."""
        status = _digest_status(self.batch.digest_id)
        if status != DigestStatus.sending and self.halt is None:
            self.halt = "cancelled" if status == DigestStatus.cancelled else "paused"

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.halt = self.halt or "failed"

    def _take(self) -> Row | None:
        if self.halt is not None or not self.queue:
            return None
        row = self.queue.popleft()
        self.taken[row.id] = row
        return row

    def _put_back(self, row: Row) -> None:
        self.taken.pop(row.id, None)
        self.queue.appendleft(row)

    async def _lane(self, connections: ConnectionSet) -> None:
        """One connection's run: rows from the queue until it is empty or halted."""
        conn = None
        delay = ACQUIRE_SECONDS
        while conn is None:
            try:
                conn = await connections.acquire()
            except SmtpUnavailable as exc:
                self.outage = exc
                return
            if conn is None:
                # The share (or the relay's cap) is used by the other lanes, or by other
                # contexts: ask again while there is work, as those come free.
                if not self.queue or self.halt is not None or self.outage is not None:
                    return
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
        heartbeat = self.batch.heartbeat
        row = self._take()
        primed: Envelope | None = None  # row's envelope, made when it was primed
        made: bytes | None = None  # row's message, made while the last reply travelled
        nxt: Row | None = None
        failed = True
        try:
            while row is not None and self.halt is None:
                if heartbeat is not None and heartbeat.lapsing():
                    raise ClaimLapsing(f"claim {self.batch.claim.token} not renewed")
                nxt = self._take()
                try:
                    primed, made = await self._one(conn, row, primed, made, nxt)
                except SmtpUnavailable as exc:
                    self.outage = exc
                    self._put_back(row)
                    break
                except _Halted:
                    break  # row and nxt go back below; the primed envelope is dropped
                self.taken.pop(row.id, None)
                row, nxt = nxt, None
            failed = False
        except Exception as exc:  # noqa: BLE001 - raised by run() once every lane stopped
            self._fail(exc)
        finally:
            if nxt is not None:
                self._put_back(nxt)
            if row is not None and row.id in self.taken:
                self._put_back(row)
            if failed or nxt is not None or row is not None:
                conn.abandon()  # nothing primed may stay open on the kept connection
            if failed:
                conn.discard()
            connections.release(conn)

    def _triage(self, rows: list[Row]) -> list[Row]:
        """Rows a takeover finds journaled are sent already; rows whose reader left fail.
        The rest is returned, to be sent."""
        recovered = [r.id for r in rows if r.taken_over]
        already = self.journal.accepted(recovered) if recovered else set()
        pending = []
        for row in rows:
            if row.id in already:
                self._add(Change(row.id, DeliveryStatus.sent, 250))
            elif not row.eligible:
                self._add(not_eligible(row))
            else:
                pending.append(row)
        return pending

    def _template_of(self, row: Row) -> DigestTemplate:
        return self.variants[row.variant] if row.variant else self.template

    def _envelope(self, row: Row) -> Envelope:
        assert row.email is not None
        return Envelope(self._template_of(row).envelope_sender(row.id), row.email)

    def _may_prime(self, row: Row) -> bool:
        """Not for a backed-off domain: its server must not even be asked RCPT TO."""
        return (
            bool(row.email) and self.ctx.domains.blocked_until(domain_of(row.email or "")) is None
        )

    async def _one(
        self,
        conn: AsyncConnection,
        row: Row,
        primed: Envelope | None,
        made: bytes | None,
        nxt: Row | None,
    ) -> tuple[Envelope | None, bytes | None]:
        """Send one row (its message `made` already, or made here) and note its change;
        returns the envelope primed for `nxt` and, when primed, its message made while
        this reply travelled. Raises SmtpUnavailable (nothing noted)."""
        assert row.email is not None and row.subscription_id is not None
        domain = domain_of(row.email)
        until = self.ctx.domains.blocked_until(domain)
        if until is not None:
            self._add(held_back(row, domain, datetime.fromtimestamp(until, utcnow().tzinfo)))
            conn.abandon()  # its envelope may have been primed with the last message
            return None, None
        # Waiting for the rate caps, a lane must still heed a pause: the row goes back.
        while (wait := self.ctx.limiter.reserve()) > 0:
            await self._wait(wait)
        while (wait := self.ctx.domains.reserve(domain)) > 0:
            await self._wait(wait)
        if self.halt is not None:
            raise _Halted
        current = primed or self._envelope(row)
        then = self._envelope(nxt) if nxt is not None and self._may_prime(nxt) else None
        wire = made if made is not None else self._render(row)
        following: list[bytes] = []
        ahead = None
        if nxt is not None and then is not None:
            ahead = partial(self._render_ahead, nxt, following)
        attempt = await conn.deliver(wire, current.mail_from, current.rcpt, then, ahead)
        made = following[0] if following else None
        if attempt.status == "sent":
            self.ctx.domains.success(domain)
            self._accepted(row.id)
            return then, made
        if attempt.status == "deferred" and attempt.code is not None and 400 <= attempt.code < 500:
            self.ctx.domains.temporary_failure(domain)
        self._add(outcome(attempt, row, self.settings, utcnow()))
        return then, made

    def _render(self, row: Row) -> bytes:
        """The row's message as it goes on the wire (signed when DKIM is set)."""
        assert row.email is not None and row.subscription_id is not None
        if row.attributes is None:
            recipient = Recipient(row.id, row.email, row.name, row.subscription_id)
        else:
            recipient = Recipient(row.id, row.email, row.name, row.subscription_id, row.attributes)
        return self._template_of(row).render_wire(recipient)

    def _render_ahead(self, row: Row, into: list[bytes]) -> None:
        """The next row's message, made while the current reply travels. A failure is
        left for the row's own turn, which makes it again and reports it for that row."""
        with contextlib.suppress(Exception):
            into.append(self._render(row))

    async def _wait(self, seconds: float) -> None:
        if self.halt is not None:
            raise _Halted
        await asyncio.sleep(seconds)

    def _accepted(self, delivery_id: int) -> None:
        """The journal first; if it is down, the ledger at once instead."""
        self.result.sent += 1
        self.ledger.sent.append(delivery_id)
        try:
            self.journal.record(delivery_id)
        except Exception:  # noqa: BLE001 - the journal is down: write the ledger now
            log.warning("journal unavailable; writing the ledger at once", exc_info=True)
            self._fold(journal=False)

    def _add(self, change: Change) -> None:
        self.ledger.add(change)
        self.result.tally(change.status)

    def _outage(self, rest: list[Row], exc: SmtpUnavailable) -> None:
        """The server cannot be reached: give the rows back and pause the send (by
        outage: the probe resumes it), trying the range again after SEND_PROBE_SECONDS."""
        self.ledger.other.extend(released(row, cancelled=False) for row in rest)
        self._fold()
        digest_id = self.batch.digest_id
        with session_scope() as session:
            lifecycle.pause(session, digest_id, PausedBy.outage, f"SMTP server unreachable: {exc}")
        log.warning("send %s paused: SMTP server unreachable", digest_id)
        self.result.retry_in = self.settings.send_probe_seconds

    def _fold(self, renew: list[int] | None = None, *, journal: bool = True) -> None:
        ledger, self.ledger = self.ledger, Ledger(order=self.order)
        _fold(
            self.settings,
            self.template,
            self.batch.digest_id,
            ledger,
            self.journal if journal else None,
            self.batch.claim,
            renew,
        )


def _template(
    ctx: WorkerContext, settings: Settings, digest_id: int, variant: int = 0
) -> DigestTemplate:
    found = ctx.templates.get((digest_id, variant))
    if found is None:
        with session_scope() as session:
            digest = session.get(Digest, digest_id)
            assert digest is not None
            mlist = session.get(MailingList, digest.list_id)
            assert mlist is not None
            content: Digest | DigestVariant | None = digest
            if variant:
                content = session.get(DigestVariant, (digest_id, variant))
            if content is None:
                raise LookupError(f"digest {digest_id} has no variant {variant}")
            found = DigestTemplate(
                settings=settings,
                digest_id=digest_id,
                list_slug=mlist.slug,
                list_name=mlist.name,
                subject=content.subject,
                text=content.text,
                html=content.html,
                dkim_keys=ctx.keys,
            )
        ctx.remember(found, variant)
    return found


def _digest_status(digest_id: int) -> str | None:
    with session_scope() as session:
        return session.scalar(select(Digest.status).where(Digest.id == digest_id))
