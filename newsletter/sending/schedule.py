"""Scheduled digests: each minute, start the lists whose cron period is due.

A period is identified by its due time in the list's own time zone (period_key). The
digests table is unique on (list, period_key), so a period is composed and sent once
whatever the number of beat processes or restarts: the second insert fails and that
tick moves on. A period whose due time lies more than SCHEDULE_WINDOW_MINUTES in the
past (the service was down) is not sent late; the operator may still `digest send` by
hand or widen the window. A period without new stories composes to nothing and is
skipped; the next tick in the window asks again, which is cheap.

A scheduled send passes the same preflight as `digest send` (newsletter/preflight/):
when a check blocks, the period's digest is composed but stays a draft, the reason is
kept on it (`digest list` shows it) and logged, and it is not tried again by itself;
the operator fixes the cause and sends it by hand (`digest send --digest ID`).

A list with a `local_time` starts each period early enough for the first time zone
(UTC+14) to get it at its own local time (sending/localtime.py); its ledger rows wait
until each reader's time. A list with `weekly` (a cron) also composes a round-up at that
time: the stories of the digests sent in the past week, period key "weekly:<key>",
Digest.frequency "weekly", for the readers who chose it (job.audience_of).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.models import Digest, DigestStatus, MailingList, Story
from newsletter.sending import lifecycle, localtime
from newsletter.sending.job import Range, start_send

log = logging.getLogger(__name__)
Enqueue = Callable[[int, list[Range]], None]


def due_period(schedule: str, timezone: str, now: datetime) -> tuple[str, datetime]:
    """The latest period (key, due time in UTC) at or before `now`."""
    zone = ZoneInfo(timezone)
    local_now = now.astimezone(zone)
    due = croniter(schedule, local_now + timedelta(microseconds=1)).get_prev(datetime)
    return due.strftime("%Y-%m-%dT%H:%M%z"), due.astimezone(UTC)


def run_due_schedules(settings: Settings, enqueue: Enqueue, now: datetime | None = None) -> int:
    """Compose and start every due digest; return how many sends started."""
    now = now or datetime.now(UTC)
    window = timedelta(minutes=settings.schedule_window_minutes)
    with session_scope() as session:
        lists = session.execute(
            select(
                MailingList.id,
                MailingList.schedule,
                MailingList.timezone,
                MailingList.local_time,
                MailingList.weekly,
            ).where(or_(MailingList.schedule.is_not(None), MailingList.weekly.is_not(None)))
        ).all()
    started = 0
    for list_id, schedule, timezone, local_time, weekly in lists:
        for cron, weekly_one in ((schedule, False), (weekly, True)):
            if cron is None:
                continue
            # A local-time period starts when its local time comes in UTC+14.
            ahead = localtime.lead(timezone, now) if local_time else timedelta()
            try:
                key, due = due_period(cron, timezone, now + ahead)
            except (ValueError, KeyError):
                log.warning("list %s has a bad schedule %r", list_id, cron)
                continue
            if now + ahead - due > window:
                continue  # missed while down: not sent late
            if weekly_one:
                key = f"weekly:{key}"
            ranges = _start_period(settings, list_id, key, now, weekly=weekly_one)
            if ranges is not None:
                digest_id, batch = ranges
                enqueue(digest_id, batch)
                started += 1
    return started


def _preflight_blocks(
    session: Session, settings: Settings, list_slug: str, digest_id: int
) -> str | None:
    """What stops the send, one line, or None when nothing does."""
    from newsletter.preflight.run import run_preflight

    report = run_preflight(session, settings, list_slug, digest_id)
    blocking = [f for f in report.findings if f.severity == "blocking"]
    if not blocking:
        return None
    first = blocking[0]
    more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
    return f"preflight blocked the scheduled send: {first.check}: {first.detail}{more}"


def compose_roundup(
    session: Session, settings: Settings, mlist: MailingList, now: datetime, key: str
) -> Digest | None:
    """The weekly round-up: the stories of the list's every-edition digests sent in the
    seven days before `now`, in the order they went out, or None when there were none.
    It uses no stories up (every-edition digests ignore it, compose.previous_digest)."""
    from newsletter.digests.compose import MAX_SELECTED
    from newsletter.digests.render import render_digest

    sent = session.scalars(
        select(Digest)
        .where(
            Digest.list_id == mlist.id,
            Digest.frequency.is_(None),
            Digest.status.in_((DigestStatus.sending, DigestStatus.sent, DigestStatus.paused)),
            Digest.started_at > now - timedelta(days=7),
            Digest.started_at <= now,
        )
        .order_by(Digest.started_at, Digest.id)
    ).all()
    ids: list[int] = []
    for d in sent:
        ids.extend(i for i in d.story_ids or [] if i not in ids)
    ids = ids[:MAX_SELECTED]
    if not ids:
        return None
    by_id = {s.id: s for s in session.scalars(select(Story).where(Story.id.in_(ids)))}
    stories = [by_id[i] for i in ids if i in by_id]
    if not stories:
        return None
    digest = Digest(
        list_id=mlist.id,
        subject="",
        status=DigestStatus.draft,
        period_key=key,
        frequency="weekly",
        created_at=now,
        story_ids=[s.id for s in stories],
        carry=[],
    )
    session.add(digest)
    session.flush()
    composed = render_digest(settings, mlist, stories, now=now, digest_id=digest.id)
    digest.subject = composed.subject
    digest.html = composed.html
    digest.text = composed.text
    return digest


def _start_period(
    settings: Settings, list_id: int, key: str, now: datetime, *, weekly: bool = False
) -> tuple[int, list[Range]] | None:
    from newsletter.digests.compose import compose_digest

    try:
        with session_scope() as session:
            exists = session.scalar(
                select(Digest.id).where(Digest.list_id == list_id, Digest.period_key == key)
            )
            if exists is not None:
                return None
            mlist = session.get(MailingList, list_id)
            assert mlist is not None
            if weekly:
                digest = compose_roundup(session, settings, mlist, now, key)
            else:
                digest = compose_digest(session, settings, mlist, now=now, period_key=key)
            if digest is None:
                return None
            digest.period_key = key
            session.flush()
            held = _preflight_blocks(session, settings, mlist.slug, digest.id)
            if held:
                digest.pause_reason = held
                log.error("scheduled digest %s of %s not sent: %s", digest.id, mlist.slug, held)
                return None
            if settings.send_approval:
                # Beat asks like a person would; a sender or admin approves (approval.py).
                lifecycle.submit(session, digest.id, "schedule")
                log.info("scheduled digest %s of %s awaits approval", digest.id, mlist.slug)
                return None
            return digest.id, start_send(session, settings, digest, now=now)
    except IntegrityError:
        return None  # another beat took this period
