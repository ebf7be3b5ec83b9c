"""The console's maintained counts, on SQLite and PostgreSQL: what a refresh counts from
real rows, and that a page's read never counts again by itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from newsletter.db import session_scope
from newsletter.models import (
    BounceEvent,
    Delivery,
    Digest,
    MailingList,
    Subscriber,
    Subscription,
)
from newsletter.stats import aggregates
from newsletter.stats.aggregates import (
    beat_tick,
    bounce_summary,
    growth,
    list_counts,
    policy_blocks,
    subscriber_counts,
)

# One clock for the fixtures and the refreshes they are checked against: a run that
# crosses midnight UTC would otherwise count the fixtures' "today" as yesterday.
NOW = datetime.now(UTC)
TODAY = NOW.date()


def day(ago: int) -> datetime:
    """Noon UTC `ago` days before today: one calendar day whatever the time of the run."""
    d = TODAY - timedelta(days=ago)
    return datetime(d.year, d.month, d.day, 12, tzinfo=UTC)


def index(ago: int) -> int:
    return aggregates.DAYS - 1 - ago


@pytest.fixture
def ids(database: str) -> dict[str, int]:
    """Two lists with readers who joined, confirmed, left and bounced on known days."""
    with session_scope() as session:
        morning = MailingList(slug="morning", name="Morning Briefing")
        evening = MailingList(slug="evening", name="Evening Edition")
        session.add_all([morning, evening])
        people = [Subscriber(email=f"r{i}@example.com", name=f"R{i}") for i in range(1, 7)]
        people[1].status = "bounced"
        people[5].status = "suppressed"
        session.add_all(people)
        session.flush()
        r1, r2, r3, r4, r5, _ = people

        def sub(
            lst: MailingList,
            who: Subscriber,
            status: str,
            created: int,
            confirmed: int | None = None,
            left: int | None = None,
        ) -> Subscription:
            row = Subscription(
                list_id=lst.id,
                subscriber_id=who.id,
                status=status,
                created_at=day(created),
                confirmed_at=day(confirmed) if confirmed is not None else None,
                unsubscribed_at=day(left) if left is not None else None,
            )
            session.add(row)
            return row

        sub(morning, r1, "confirmed", 40, 40)  # before the window: counted, not in growth
        sub(morning, r2, "confirmed", 3, 2)
        sub(morning, r3, "unconfirmed", 3)
        sub(morning, r4, "unsubscribed", 10, 10, 1)
        sub(evening, r5, "confirmed", 0, 0)
        sub(evening, r1, "unconfirmed", 2)

        digest = Digest(list_id=morning.id, subject="Morning", status="sent", started_at=day(2))
        session.add(digest)
        session.flush()
        to_r2 = Delivery(digest_id=digest.id, subscriber_id=r2.id, status="bounced")
        to_r4 = Delivery(digest_id=digest.id, subscriber_id=r4.id, status="sent")
        session.add_all([to_r2, to_r4])
        session.flush()

        def event(kind: str, reason: str, ago: int, domain: str, delivery: int | None) -> None:
            session.add(
                BounceEvent(
                    delivery_id=delivery,
                    kind=kind,
                    reason=reason,
                    remote_domain=domain,
                    created_at=day(ago),
                    source="send" if kind == "policy" else "mailbox",
                )
            )

        event("hard", "bad_mailbox", 1, "example.com", to_r2.id)
        event("soft", "mailbox_full", 1, "example.com", to_r4.id)
        event("complaint", "abuse", 0, "example.com", to_r4.id)
        event("policy", "blocked_ip", 1, "gmail.com", to_r4.id)
        event("policy", "blocked_ip", 0, "gmail.com", None)
        event("policy", "spam_content", 5, "example.org", None)
        event("policy", "blocked_ip", 40, "yahoo.com", None)  # older than the window
        return {"morning": morning.id, "evening": evening.id}


def test_a_refresh_counts_subscribers_per_list_by_status(ids: dict[str, int]) -> None:
    with session_scope() as session:
        aggregates.refresh(session, now=NOW)
    with session_scope() as session:
        counts = {c.slug: c for c in list_counts(session).lists}
        who = subscriber_counts(session)
    assert [c for c in counts] == ["evening", "morning"]  # by name
    assert counts["morning"].by_status == {"confirmed": 2, "unconfirmed": 1, "unsubscribed": 1}
    assert counts["morning"].total == 4
    assert counts["evening"].by_status == {"confirmed": 1, "unconfirmed": 1, "unsubscribed": 0}
    assert who == {"active": 4, "bounced": 1, "suppressed": 1}


def test_the_growth_series_has_joins_confirmations_leaves_and_hard_bounces_per_day(
    ids: dict[str, int],
) -> None:
    with session_scope() as session:
        aggregates.refresh(session, now=NOW)
    with session_scope() as session:
        morning = growth(session, ids["morning"])
        evening = growth(session, ids["evening"])
        every = growth(session)
        nothing = growth(session, 999)

    assert len(morning.days) == aggregates.DAYS
    assert morning.days[-1] == TODAY.isoformat()
    assert morning.days[0] == (TODAY - timedelta(days=aggregates.DAYS - 1)).isoformat()

    def at(values: list[int]) -> dict[int, int]:  # days ago → count, where not zero
        return {aggregates.DAYS - 1 - i: n for i, n in enumerate(values) if n}

    assert at(morning.joins) == {3: 2, 10: 1}  # the reader of 40 days ago is outside
    assert at(morning.confirmations) == {2: 1, 10: 1}
    assert at(morning.leaves) == {1: 1}
    assert at(morning.bounces) == {1: 1}  # the hard one; soft, policy, complaint are not
    assert at(evening.joins) == {0: 1, 2: 1}
    assert at(evening.confirmations) == {0: 1}
    assert at(evening.leaves) == {} and at(evening.bounces) == {}
    assert at(every.joins) == {0: 1, 2: 1, 3: 2, 10: 1}
    assert at(every.bounces) == {1: 1}
    assert sum(nothing.joins) == 0 and len(nothing.joins) == aggregates.DAYS


def test_policy_blocks_by_receiving_domain_and_bounces_by_kind_and_reason(
    ids: dict[str, int],
) -> None:
    with session_scope() as session:
        aggregates.refresh(session, now=NOW)
    with session_scope() as session:
        blocks = policy_blocks(session)
        summary = bounce_summary(session)
    assert [(d.domain, d.count) for d in blocks.domains] == [("gmail.com", 2), ("example.org", 1)]
    assert blocks.total == 3
    assert summary.kinds == {"hard": 1, "soft": 1, "complaint": 1, "policy": 3}
    assert summary.total == 6
    reasons = {(r.kind, r.reason): r.count for r in summary.reasons}
    assert reasons == {
        ("policy", "blocked_ip"): 2,
        ("policy", "spam_content"): 1,
        ("hard", "bad_mailbox"): 1,
        ("soft", "mailbox_full"): 1,
        ("complaint", "abuse"): 1,
    }
    assert summary.reasons[0] == aggregates.ReasonCount("policy", "blocked_ip", 2)
    assert summary.since is not None and summary.since.date() == TODAY - timedelta(days=29)


def add_reader(session: Session, list_id: int, email: str) -> None:
    reader = Subscriber(email=email)
    session.add(reader)
    session.flush()
    session.add(Subscription(list_id=list_id, subscriber_id=reader.id, status="confirmed"))


def test_a_read_counts_once_on_a_fresh_install_then_only_refreshes_count(
    ids: dict[str, int],
) -> None:
    with session_scope() as session:
        first = list_counts(session)  # no snapshot yet: counted now
    assert {c.slug: c.total for c in first.lists} == {"morning": 4, "evening": 2}
    with session_scope() as session:
        add_reader(session, ids["evening"], "late@example.com")
    with session_scope() as session:
        again = list_counts(session)  # read from the snapshot: the new reader is not in it
        joined = sum(growth(session, ids["evening"]).joins)
    assert {c.slug: c.total for c in again.lists} == {"morning": 4, "evening": 2}
    assert again.refreshed_at == first.refreshed_at

    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "stats", "refresh", "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["refreshed"]) >= {"lists", "growth", "bounces"}
    with session_scope() as session:
        after = list_counts(session)
        evening = growth(session, ids["evening"])
        assert beat_tick(session) is None  # the command is not beat
    assert {c.slug: c.total for c in after.lists} == {"morning": 4, "evening": 3}
    assert after.refreshed_at is not None and first.refreshed_at is not None
    assert after.refreshed_at > first.refreshed_at
    # The late reader is in the new series (summed: a run that crosses midnight UTC puts
    # the readers on other days, not in or out of the 30-day window).
    assert sum(evening.joins) == joined + 1


def test_beat_refreshes_and_leaves_its_mark(ids: dict[str, int]) -> None:
    from workers.tasks import refresh_stats

    names = refresh_stats.run()
    assert "growth" in names
    with session_scope() as session:
        tick = beat_tick(session)
        counted = list_counts(session).refreshed_at
    assert tick is not None and counted is not None
    assert abs((tick - counted).total_seconds()) < 5
    assert abs((datetime.now(UTC) - tick).total_seconds()) < 60
