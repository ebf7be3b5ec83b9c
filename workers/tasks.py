"""Tasks: load ids, call newsletter/, record the outcome."""

from __future__ import annotations

import contextlib
import logging
import os
import smtplib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from celery.signals import (
    worker_before_create_process,
    worker_init,
    worker_process_init,
    worker_ready,
)

from newsletter.config import get_settings
from newsletter.db import get_engine, session_scope
from workers.app import app

# What a task needs is imported in the task: the process that only enqueues (a send's
# start, the web form) and the worker's prefork parent stay free of the mail renderer.
if TYPE_CHECKING:
    from newsletter.mail.smtp import SmtpTransport
    from newsletter.mail.system import Outgoing

log = logging.getLogger(__name__)


def transport() -> SmtpTransport:
    """The worker thread's kept synchronous SMTP connection for system mails (a batch
    sends over the context's ConnectionSet; the outage probe uses this one)."""
    from newsletter.sending.context import context

    kept = context(get_settings()).transport
    kept.abandon()
    return kept


class PermanentRefusal(Exception):
    pass


@app.task(
    bind=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    dont_autoretry_for=(PermanentRefusal,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=8,
)
def send_confirmation(self: Any, subscription_id: int) -> str:
    from newsletter.subscriptions.confirmation import confirmation_mail

    settings = get_settings()
    with session_scope() as session:
        mail = confirmation_mail(session, settings, subscription_id)
    if mail is None:
        return "not pending"
    try:
        transport().send(mail.raw, mail.mail_from, [mail.rcpt_to])
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        if code >= 500:
            log.warning("confirmation %s refused for good: %s %s", subscription_id, code, reply)
            raise PermanentRefusal(f"{code} {reply!r}") from None
        raise
    return "sent"


def _send_system(mail: Outgoing, what: str, ident: int) -> str:
    """One system mail out through the worker's kept connection; a 5xx is final."""
    try:
        transport().send(mail.raw, mail.mail_from, [mail.rcpt_to])
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        if code >= 500:
            log.warning("%s %s refused for good: %s %s", what, ident, code, reply)
            raise PermanentRefusal(f"{code} {reply!r}") from None
        raise
    return "sent"


@app.task(
    bind=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    dont_autoretry_for=(PermanentRefusal,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=8,
)
def send_welcome(self: Any, subscription_id: int) -> str:
    """A list's welcome after a confirmation (subscriptions/welcome.py)."""
    from newsletter.subscriptions.welcome import welcome_mail

    with session_scope() as session:
        mail = welcome_mail(session, get_settings(), subscription_id)
    if mail is None:
        return "not due"
    return _send_system(mail, "welcome", subscription_id)


@app.task(
    bind=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    dont_autoretry_for=(PermanentRefusal,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=3,
)
def send_preferences_link(self: Any, subscriber_id: int, language: str | None = None) -> str:
    """The preference centre's hour-long link, asked for by address."""
    from newsletter.subscriptions.preferences import link_email

    with session_scope() as session:
        mail = link_email(session, get_settings(), subscriber_id, language)
    if mail is None:
        return "no such reader"
    return _send_system(mail, "preference link", subscriber_id)


@app.task
def purge_unconfirmed() -> int:
    from newsletter.subscriptions.maintenance import purge_unconfirmed as purge

    with session_scope() as session:
        return purge(session, get_settings())


def load_producer() -> None:
    """Load now what a long-lived process that enqueues (the web console: sign-ups and
    "send") would otherwise load at its first enqueue, while a reader or an editor waits:
    the broker's transport with Celery's message builder (~0.2 s) and the database
    driver (~0.1 s). Connects to nothing."""
    with app.connection_for_write() as connection:
        connection.transport  # noqa: B018 - resolving it imports the transport
    get_engine()


# Sending engine ---------------------------------------------------------------------


def enqueue_ranges(digest_id: int, ranges: list[tuple[int, int]]) -> None:
    """One batch task per delivery-id range of a send, and the rest of its ledger.

    start_send writes only the first chunk of a big list; while the digest says its
    ledger is incomplete, `complete_ledger` is queued first (one worker writes the rest
    while the others send the first batches). Every path that starts, resumes or
    recovers a send comes through here, so a lost `complete_ledger` is queued again by
    the next recovery; running it twice is harmless.
    """
    if not _ledger_complete(digest_id):
        complete_ledger.delay(digest_id)
    for lo, hi in ranges:
        send_batch.delay(digest_id, lo, hi)


def _ledger_complete(digest_id: int) -> bool:
    from sqlalchemy import select

    from newsletter.models import Digest

    with session_scope() as session:
        found = session.scalar(select(Digest.ledger_complete).where(Digest.id == digest_id))
    return found is not False


@app.task(acks_late=True)
def complete_ledger(digest_id: int) -> int:
    """Write the recipients start_send left out, then send them (job.complete_ledger)."""
    from newsletter.sending.job import complete_ledger as write_rest

    with session_scope() as session:
        ranges = write_rest(session, get_settings(), digest_id)
    # Not through enqueue_ranges: the ledger is complete now, no need to ask again.
    for lo, hi in ranges:
        send_batch.delay(digest_id, lo, hi)
    return len(ranges)


def _transient() -> tuple[type[BaseException], ...]:
    """Errors of the database or the broker that pass: a restart, a failover, a network
    blip (and a batch that stopped because its claim could not be renewed)."""
    import sqlalchemy.exc
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from newsletter.sending.batch import ClaimLapsing

    return (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.DisconnectionError,
        BrokerError,
        RedisConnectionError,
        RedisTimeoutError,
        ClaimLapsing,
    )


BATCH_RETRIES = 30  # with a back-off of at most SEND_RETRY_TASK_MAX_SECONDS: ~2 minutes


@app.task(bind=True, acks_late=True, max_retries=BATCH_RETRIES)
def send_batch(
    self: Any, digest_id: int, lo: int, hi: int, claim: str | None = None
) -> dict[str, int]:
    """Run one batch. On a database or broker error it runs again promptly (back-off
    0.5, 1, 2, 4 s, then every SEND_RETRY_TASK_MAX_SECONDS, BATCH_RETRIES times) with the
    same claim token, so it takes its own rows back at once instead of waiting for their
    lease (ledger._claim): a 10 s database restart costs seconds. A task that ran out of
    retries (or whose retry message was lost with the broker) is acknowledged; its rows'
    claim is no longer renewed and the claim check (recover_claims) hands them on after
    SEND_LEASE_SECONDS.
    """
    from newsletter.sending.batch import Batch
    from newsletter.sending.ledger import Claim

    settings = get_settings()
    batch = Batch(settings, digest_id, lo, hi, claim=Claim(claim) if claim else None)
    try:
        result = batch.run()
    except _transient() as exc:
        delay = min(settings.send_retry_task_max_seconds, 0.5 * 2.0**self.request.retries)
        log.warning("batch %s [%d, %d] failed (%s); again in %.1fs", digest_id, lo, hi, exc, delay)
        raise self.retry(kwargs={"claim": batch.claim.token}, countdown=delay, exc=exc) from None
    if result.enqueue:  # an auto-resume; most batches have nothing to add
        enqueue_ranges(digest_id, result.enqueue)
    if result.retry_in is not None:
        send_batch.apply_async((digest_id, lo, hi), countdown=result.retry_in)
    return {"sent": result.sent, "bounced": result.bounced, "deferred": result.deferred}


@app.task
def send_tick() -> int:
    """Each minute: start the digests that are due, recover stalled sends."""
    from newsletter.sending.later import start_due
    from newsletter.sending.schedule import run_due_schedules

    started = run_due_schedules(get_settings(), enqueue_ranges)
    started += start_due(get_settings(), enqueue_ranges)  # sends scheduled for a time
    wake_local_sends()
    recover_sends()
    return started


def wake_local_sends(now: datetime | None = None) -> int:
    """Rows of local-time sends whose time came (sending/localtime.py): enqueued once."""
    from newsletter.sending.localtime import wake_due

    with session_scope() as session:
        found = wake_due(session, get_settings().send_batch_size, now or datetime.now(UTC))
    for digest_id, ranges in found:
        for lo, hi in ranges:
            send_batch.delay(digest_id, lo, hi)
    return sum(len(r) for _, r in found)


@app.task
def recover_claims() -> int:
    """Beat, every SEND_CLAIM_CHECK_SECONDS: rows of a dead batch (its claim's heartbeat
    stopped for SEND_LEASE_SECONDS) go to a live worker, however the rest of the send
    progresses (job.recover_dead_claims); and if the broker lost its queue, every send's
    open batches are queued again at once."""
    from newsletter.sending.job import recover_dead_claims

    if broker_forgot():
        log.warning("the broker lost its queued tasks (restarted empty): recovering sends")
        recover_sends(now=True)
    with session_scope() as session:
        found = recover_dead_claims(session, get_settings())
    for digest_id, ranges in found:
        log.warning("send %s: %d ranges of a dead batch enqueued again", digest_id, len(ranges))
        for lo, hi in ranges:
            send_batch.delay(digest_id, lo, hi)
    return sum(len(r) for _, r in found)


BROKER_MARK = "newsletter:broker-mark"


def broker_forgot() -> bool:
    """Did the broker lose what was queued in it since the last check?

    A Redis broker restarted without persistence (as it is often run) or flushed comes
    back empty: the batches queued in it are gone, and without this the sends would wait
    for the stall check (SEND_STALL_SECONDS). A key set here is the witness: absent
    means forgotten (SET NX answers whether it had to set it). The first check after a
    first start also says so; that recovery costs a few empty tasks. Other brokers keep
    their queues across a restart (durable queues, files): never.
    """
    url = get_settings().redis_url
    if url is None:
        return False
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return bool(client.set(BROKER_MARK, "1", nx=True))
    finally:
        client.close()


def recover_sends(*, now: bool = False) -> None:
    from newsletter.sending.job import recover_stalled

    with session_scope() as session:
        found = recover_stalled(session, get_settings(), stall_seconds=0 if now else None)
    for digest_id, ranges in found:
        log.warning("send %s stalled; enqueueing %d batches again", digest_id, len(ranges))
        enqueue_ranges(digest_id, ranges)


@worker_init.connect
def _pool_size(sender: Any = None, **_: object) -> None:
    """How many processes (or threads: each has its own connections) split this host's
    SEND_CONNECTIONS; set before the pool starts, so its children inherit it."""
    from newsletter.sending.connections import POOL_ENV

    size = getattr(sender, "concurrency", None) or 1
    if "solo" in str(getattr(sender, "pool_cls", "")).lower():
        size = 1
    os.environ[POOL_ENV] = str(size)
    # The send path imported once here, before the pool forks: the children share it.
    import newsletter.sending.batch  # noqa: F401
    import newsletter.sending.job  # noqa: F401

    get_engine()  # loads the database driver; no connection yet (each child makes its own)
    _parse_signing_keys()
    _configure_mappers()


def _configure_mappers() -> None:
    """SQLAlchemy's mapper configuration, built once before the pool forks: each child
    would otherwise build it at its first query (~50 ms, before its first message) and
    hold its own copy (~1.5 MB)."""
    from sqlalchemy.orm import configure_mappers

    import newsletter.models  # noqa: F401 - every mapper registered first

    configure_mappers()


def _parse_signing_keys() -> None:
    """The DKIM keys parsed once, before the pool forks: each child would otherwise run
    the RSA key's consistency check (~70 ms on a slow core) before its first message or
    confirmation mail. The parsed key is cached by path, mtime and size, so a key file
    replaced later is read again."""
    from newsletter.config import ConfigError
    from newsletter.mail.dkim import keys_from_settings

    # A key that cannot be read is reported by the send or mail that needs it.
    with contextlib.suppress(ConfigError):
        keys_from_settings(get_settings())


@worker_before_create_process.connect
def _share_before_fork(**_: object) -> None:
    """Just before each pool process forks: what every child would build for itself is
    built once here, and the heap is frozen out of the collector (a collection writes to
    every object it scans), so the children share these pages instead of copying them."""
    import gc
    import sys

    cffi = sys.modules.get("cffi")  # billiard's choice: it uses cffi when it is loaded
    if cffi is not None:
        # billiard declares prctl() with cffi in each new child (set_pdeathsig); the C
        # parser that loads (~4 MB) is cached per process, so it is made here, once.
        cffi.FFI().cdef("int prctl (int __option, ...);")
    gc.freeze()


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    """A forked pool process must not share its parent's database sockets."""
    from newsletter import db

    db.reset(close=False)


@worker_ready.connect
def _recover_on_start(**_: object) -> None:
    """A worker that starts picks up what a dead one left (its broker message may be gone)."""
    try:
        recover_sends()
        recover_claims()
    except Exception:  # noqa: BLE001 - a worker must start even if the database is not up yet
        log.exception("recovering stalled sends failed")
    finally:
        from newsletter import db

        db.reset()


# Bounces ------------------------------------------------------------------------------


@app.task
def poll_bounce_mailbox() -> dict[str, int]:
    """Beat, every minute: read the bounce mailbox (IMAP/POP3 over TLS) if one is set."""
    from newsletter.bounces.poller import poll_mailbox

    settings = get_settings()
    if not settings.bounce_mailbox_url:
        return {}
    report = poll_mailbox(settings)
    return {"fetched": report.fetched, "recorded": report.recorded, "refused": report.refused}


# Feeds --------------------------------------------------------------------------------


@app.task
def poll_feeds() -> dict[str, int]:
    """Beat, every FEED_POLL_MINUTES: each registered feed with conditional GET, its new
    entries stored for its list (newsletter/sources/poll.py)."""
    from newsletter.sources.poll import poll_feeds as poll

    with session_scope() as session:
        outcomes = poll(session, get_settings())
    failed = sum(1 for o in outcomes if o.status.startswith("error"))
    return {"feeds": len(outcomes), "added": sum(o.added for o in outcomes), "failed": failed}


# The console's counts -----------------------------------------------------------------


@app.task
def refresh_stats() -> list[str]:
    """Beat, every STATS_REFRESH_SECONDS: the counts the console reads (newsletter/stats/),
    and the mark its dashboard shows as beat's last tick (a tick a worker ran)."""
    from newsletter.stats.aggregates import mark_beat, refresh

    with session_scope() as session:
        names = refresh(session)
        mark_beat(session)
    return names


# Outgoing webhooks ----------------------------------------------------------------------


@app.task(soft_time_limit=60, time_limit=90, expires=60)
def deliver_webhooks() -> dict[str, int]:
    """Beat (every WEBHOOK_SWEEP_SECONDS) and the DeliverWebhooks nudge: post the due
    webhook deliveries (newsletter/webhooks/deliver.py). Short and bounded: a dead
    endpoint costs one 5-second timeout per sweep, and no send ever waits for this."""
    from newsletter.webhooks.deliver import deliver_due

    return deliver_due(session_scope, get_settings())


# Engagement: sunset -------------------------------------------------------------------


@app.task(expires=3000)
def sunset_sweep(now: str | None = None) -> dict[str, int]:
    """Beat, hourly: lists with `sunset_after` ask readers who stopped clicking "Still want
    <list>?" and unsubscribe those who did not answer within SUNSET_GRACE_DAYS
    (newsletter/engagement/sunset.py). Each question is marked in the transaction that
    sends it, so a failed send leaves the reader unasked and no reader is asked twice.
    `now` (ISO 8601) is for tests and operators replaying a day."""
    from datetime import datetime

    from newsletter.engagement import sunset

    settings = get_settings()
    at = datetime.fromisoformat(now) if now else None
    with session_scope() as session:
        plan = sunset.plan(session, settings, at)
    ended = 0
    for subscription_id in plan.end:
        with session_scope() as session:
            ended += sunset.end(session, settings, subscription_id, at)
    asked = failed = 0
    for subscription_id in plan.ask:
        try:
            with session_scope() as session:
                mail = sunset.ask(session, settings, subscription_id, at)
                if mail is None:
                    continue
                transport().send(mail.raw, mail.mail_from, [mail.rcpt_to])
            asked += 1
        except (smtplib.SMTPException, OSError) as exc:
            failed += 1  # rolled back: asked again by the next sweep
            log.warning("sunset question to subscription %s not sent: %s", subscription_id, exc)
    return {"asked": asked, "ended": ended, "failed": failed}
