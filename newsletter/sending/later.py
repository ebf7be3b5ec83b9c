"""A send at a time the operator chose: the digest waits as `scheduled` until beat's send
tick finds it due, then starts exactly as `send` would have.

* Scheduling takes a draft (draft → scheduled, sending/lifecycle.py) and keeps who asked
  in `requested_by`; a scheduled digest uses its stories up like a send (digests/carry.py
  counts every status but draft), so the next compose does not take them twice.
* Unscheduling before the time makes it a draft again; nothing was written to the ledger.
* The preflight is run by whoever schedules (the console does, as before a send now),
  when a sender can still read it and decide; the due time starts what they approved
  then, with no second verdict nobody is there to read. With NEWSLETTER_SEND_APPROVAL
  on, the due send asks for approval in the name of who scheduled it (scheduled →
  draft → awaiting_approval, in one transaction).
* A time missed while the service was down is still sent when it comes back: it was
  one operator's explicit choice, unlike a cron period that recurs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.models import Digest, DigestStatus, utcnow
from newsletter.sending import lifecycle
from newsletter.sending.job import Range, start_send
from newsletter.sending.lifecycle import Event, IllegalTransition

log = logging.getLogger(__name__)
Enqueue = Callable[[int, list[Range]], None]
MAX_AHEAD = timedelta(days=366)


def local_time(value: str, timezone: str) -> datetime:
    """A datetime-local value ("2026-12-01T09:00") in the list's time zone, as UTC."""
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("send_at", f"{value[:40]!r} is not a date and time") from None
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    return naive.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def schedule(session: Session, digest: Digest, send_at: datetime, requested_by: str) -> None:
    """draft → scheduled for `send_at` (UTC), in the future and within a year."""
    now = utcnow()
    if send_at <= now:
        raise InvalidInput("send_at", "choose a time in the future")
    if send_at - now > MAX_AHEAD:
        raise InvalidInput("send_at", "choose a time within a year")
    if not lifecycle.schedule(session, digest.id, send_at, requested_by):
        message = f"digest {digest.id} is {digest.status}, not a draft"
        raise IllegalTransition(digest.status, Event.schedule, message, field="digest")
    session.refresh(digest)


def unschedule(session: Session, digest: Digest) -> None:
    """scheduled → draft, before its time."""
    if not lifecycle.unschedule(session, digest.id):
        message = f"send {digest.id} is {digest.status}, not scheduled"
        raise IllegalTransition(digest.status, Event.unschedule, message)
    session.refresh(digest)


def due(session: Session, now: datetime) -> list[int]:
    """Scheduled digests whose time has come, oldest first."""
    return list(
        session.scalars(
            select(Digest.id)
            .where(Digest.status == DigestStatus.scheduled, Digest.send_at <= now)
            .order_by(Digest.send_at, Digest.id)
            .limit(100)
        )
    )


def start_due(settings: Settings, enqueue: Enqueue, now: datetime | None = None) -> int:
    """Beat: start every scheduled send that is due; return how many started."""
    now = now or datetime.now(UTC)
    with session_scope() as session:
        found = due(session, now)
    started = 0
    for digest_id in found:
        ranges = _start_one(settings, digest_id)
        if ranges is not None:
            enqueue(digest_id, ranges)
            started += 1
    return started


def _start_one(settings: Settings, digest_id: int) -> list[Range] | None:
    with session_scope() as session:
        digest = session.get(Digest, digest_id)
        if digest is None or digest.status != DigestStatus.scheduled:
            return None  # unscheduled or started by another beat meanwhile
        if settings.send_approval:
            asked_by = digest.requested_by or "schedule"
            lifecycle.unschedule(session, digest.id)
            lifecycle.submit(session, digest.id, asked_by)
            log.info("scheduled send %s awaits approval", digest_id)
            return None
        log.info("scheduled send %s starts", digest_id)
        return start_send(session, settings, digest)
