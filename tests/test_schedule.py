"""Schedules: a due period is composed and sent once; empty and missed periods are skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Digest, MailingList, Story, Subscriber, Subscription
from newsletter.sending.schedule import due_period, run_due_schedules


def _setup(now: datetime) -> None:
    with session_scope() as session:
        mlist = MailingList(slug="daily", name="Daily", schedule="0 7 * * *", timezone="UTC")
        session.add(mlist)
        session.flush()
        sub = Subscriber(email="reader@example.org", name="Reader")
        session.add(sub)
        session.flush()
        session.add(Subscription(list_id=mlist.id, subscriber_id=sub.id, status="confirmed"))
        session.add(Story(slug="s1", title="A story", lede="Lede", body="Body", published_at=now))


def test_a_due_period_is_sent_once_and_empty_or_missed_ones_are_not(sqlite_db: str) -> None:
    day = datetime(2026, 11, 20, tzinfo=UTC)
    _setup(day + timedelta(hours=6))
    started: list[int] = []

    def enqueue(digest_id: int, ranges: list[tuple[int, int]]) -> None:
        started.append(digest_id)

    settings = get_settings()
    at = day + timedelta(hours=7, minutes=1)
    assert run_due_schedules(settings, enqueue, now=at) == 1
    # A second beat, or the same one after a restart: the period exists, nothing new.
    assert run_due_schedules(settings, enqueue, now=at + timedelta(minutes=1)) == 0
    # The next day has no new stories: skipped.
    assert run_due_schedules(settings, enqueue, now=at + timedelta(days=1)) == 0
    # A story arrives, but the service was down until 10:00: not sent late.
    with session_scope() as session:
        session.add(
            Story(
                slug="s2", title="Another", lede="L", body="B", published_at=at + timedelta(days=1)
            )
        )
    assert run_due_schedules(settings, enqueue, now=day + timedelta(days=2, hours=10)) == 0
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Digest)) == 1
        digest = session.scalar(select(Digest))
        assert digest is not None and digest.status == "sending"
        assert digest.period_key == due_period("0 7 * * *", "UTC", at)[0]
    assert len(started) == 1


def test_periods_follow_the_list_time_zone() -> None:
    now = datetime(2026, 7, 1, 5, 30, tzinfo=UTC)  # 07:30 in Berlin (summer time)
    key, due = due_period("0 7 * * *", "Europe/Berlin", now)
    assert key == "2026-07-01T07:00+0200" and due == datetime(2026, 7, 1, 5, 0, tzinfo=UTC)


def test_a_scheduled_send_the_preflight_blocks_stays_a_draft_with_the_reason(
    sqlite_db: str,
) -> None:
    """Production with a From address at a placeholder domain: `digest send` would
    refuse, so beat does too; the period's digest is kept as a draft saying why, and is
    not tried again by itself."""
    day = datetime(2026, 11, 20, tzinfo=UTC)
    _setup(day + timedelta(hours=6))
    started: list[int] = []
    settings = get_settings().model_copy(update={"env": "production"})
    at = day + timedelta(hours=7, minutes=1)
    assert run_due_schedules(settings, lambda d, r: started.append(d), now=at) == 0
    assert run_due_schedules(settings, lambda d, r: started.append(d), now=at) == 0
    assert started == []
    with session_scope() as session:
        [digest] = session.scalars(select(Digest)).all()
        assert digest.status == "draft"
        assert digest.pause_reason is not None
        assert digest.pause_reason.startswith(
            "preflight blocked the scheduled send: dns: not checked: the From domain localhost"
        )
