"""The weekly round-up: a list with `weekly` composes, at that cron time, one digest of
the stories its every-edition digests sent in the past week, for the readers who chose
"weekly" only; every-edition digests go to "every" readers only; round-ups use no
stories up; a period is composed once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.digests.compose import compose_digest
from newsletter.models import Delivery, Digest, MailingList, Story, Subscriber, Subscription
from newsletter.sending.job import start_send
from newsletter.sending.schedule import run_due_schedules

MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _setup() -> int:
    with session_scope() as session:
        mlist = MailingList(slug="news", name="News", timezone="UTC", weekly="0 8 * * 1")
        session.add(mlist)
        session.flush()
        for name, frequency in (("every1", "every"), ("every2", "every"), ("week1", "weekly")):
            s = Subscriber(email=f"{name}@example.org", name=name)
            session.add(s)
            session.flush()
            session.add(
                Subscription(
                    list_id=mlist.id, subscriber_id=s.id, status="confirmed", frequency=frequency
                )
            )
        return mlist.id


def _story(slug: str, at: datetime) -> None:
    with session_scope() as session:
        session.add(Story(slug=slug, title=slug.upper(), lede="L", body="B", published_at=at))


def _edition(list_id: int, at: datetime) -> Digest:
    """Compose and start an every-edition digest at `at`; return it."""
    settings = get_settings()
    with session_scope() as session:
        mlist = session.get(MailingList, list_id)
        assert mlist is not None
        digest = compose_digest(session, settings, mlist, now=at)
        assert digest is not None
        start_send(session, settings, digest, now=at)
        digest.started_at = at
        session.flush()
        session.expunge(digest)
        return digest


def _ledger(digest_id: int) -> set[str]:
    with session_scope() as session:
        return set(
            session.scalars(
                select(Subscriber.name)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.digest_id == digest_id)
            )
        )


def test_weekly_readers_get_only_the_round_up_of_the_week(sqlite_db: str) -> None:
    list_id = _setup()
    _story("old", MONDAY - timedelta(days=9))
    first = _edition(list_id, MONDAY - timedelta(days=8, hours=20))  # before the week
    _story("tue", MONDAY - timedelta(days=6))
    second = _edition(list_id, MONDAY - timedelta(days=5, hours=20))
    _story("thu", MONDAY - timedelta(days=4))
    _story("fri", MONDAY - timedelta(days=3))
    third = _edition(list_id, MONDAY - timedelta(days=2, hours=20))
    for edition in (first, second, third):
        assert _ledger(edition.id) == {"every1", "every2"}  # not the weekly reader

    settings = get_settings()
    started: list[int] = []

    def run(at: datetime) -> int:
        return run_due_schedules(settings, lambda d, r: started.append(d), now=at)

    assert run(MONDAY - timedelta(minutes=1)) == 0  # last week's period was missed: not late
    assert run(MONDAY + timedelta(seconds=30)) == 1
    assert run(MONDAY + timedelta(minutes=2)) == 0  # composed once
    with session_scope() as session:
        roundup = session.scalar(select(Digest).where(Digest.frequency == "weekly"))
        assert roundup is not None and roundup.id == started[0]
        assert roundup.period_key == "weekly:2026-11-30T08:00+0000"
        titles = [
            session.get(Story, i).title  # type: ignore[union-attr]
            for i in roundup.story_ids
        ]
        assert titles == ["TUE", "FRI", "THU"]  # in the order they went out (newest first in each)
        assert "THU" in roundup.html and "OLD" not in roundup.html
    assert _ledger(started[0]) == {"week1"}

    # The round-up used nothing up: the next edition takes the stories after the third.
    _story("sat", MONDAY + timedelta(hours=1))
    fourth = _edition(list_id, MONDAY + timedelta(hours=2))
    with session_scope() as session:
        digest = session.get(Digest, fourth.id)
        assert digest is not None
        assert [session.get(Story, i).title for i in digest.story_ids] == ["SAT"]  # type: ignore[union-attr]
    assert _ledger(fourth.id) == {"every1", "every2"}


def test_a_week_without_editions_has_no_round_up(sqlite_db: str) -> None:
    _setup()
    settings = get_settings()
    assert run_due_schedules(settings, lambda d, r: None, now=MONDAY + timedelta(seconds=5)) == 0
    with session_scope() as session:
        assert session.scalars(select(Digest)).all() == []


def test_a_list_without_a_round_up_sends_every_edition_to_everyone(sqlite_db: str) -> None:
    list_id = _setup()
    with session_scope() as session:
        mlist = session.get(MailingList, list_id)
        assert mlist is not None
        mlist.weekly = None
    _story("a", MONDAY - timedelta(days=1))
    edition = _edition(list_id, MONDAY)
    assert _ledger(edition.id) == {"every1", "every2", "week1"}
