"""The console's counts, computed by a refresh and read back from one snapshot each.

Counting a million subscriptions takes a while; reading a snapshot does not. So pages
never count: beat refreshes every STATS_REFRESH_SECONDS (workers.tasks.refresh_stats),
an operator can with `newsletter stats refresh`, and a page that finds no snapshot at
all (a fresh install) refreshes once. Every refresh query is one GROUP BY over an index:
the per-list counts over ix_subscriptions_list_status, the rest over a 30-day range of
a timestamp index (migration 0009_stats).

What is counted, per list and UTC day over the last DAYS days (growth):
* joins: subscriptions created (a form, an import, an operator's add);
* confirmations: confirmed_at (double opt-in done, or added as confirmed);
* leaves: unsubscribed_at (the reader left, or a complaint ended the subscription: a
  complaint is counted here, not again as a bounce);
* bounces: hard bounce events of the list's deliveries, addresses gone for good. Soft
  bounces are passing trouble and policy blocks are about us, not the reader; both are
  in the bounce summary.

Policy blocks: bounce events of kind "policy" by receiving domain. The sending engine
records its own refusals through bounces.handling.record_send_refusal as events of
source "send" with the recipient's domain, so blocks at RCPT/DATA time are in them too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from newsletter.models import (
    BounceEvent,
    Delivery,
    Digest,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from newsletter.stats import store

DAYS = 30
TOP_DOMAINS = 20
TOP_REASONS = 50
SERIES = ("joins", "confirmations", "leaves", "bounces")
GROWTH_KINDS = ("hard",)  # see the module's docstring
ALL = "all"  # growth's key for every list together

LISTS, SUBSCRIBERS, GROWTH, POLICY, BOUNCES, BEAT = (
    "lists",
    "subscribers",
    "growth",
    "policy_blocks",
    "bounces",
    "beat",
)


# What the pages read ----------------------------------------------------------------


@dataclass(frozen=True)
class ListCount:
    id: int
    slug: str
    name: str
    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def __getitem__(self, status: str) -> int:
        return self.by_status.get(status, 0)


@dataclass(frozen=True)
class Growth:
    days: list[str]  # ISO dates, oldest first
    joins: list[int]
    confirmations: list[int]
    leaves: list[int]
    bounces: list[int]
    refreshed_at: datetime | None = None

    def series(self) -> dict[str, list[int]]:
        return {
            "Joins": self.joins,
            "Confirmations": self.confirmations,
            "Leaves": self.leaves,
            "Bounces": self.bounces,
        }


@dataclass(frozen=True)
class DomainCount:
    domain: str
    count: int


@dataclass(frozen=True)
class ReasonCount:
    kind: str
    reason: str
    count: int


@dataclass(frozen=True)
class BounceSummary:
    """Bounce events of the last DAYS days: totals by kind, and by kind and reason."""

    since: datetime | None
    kinds: dict[str, int]
    reasons: list[ReasonCount]
    refreshed_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


@dataclass(frozen=True)
class PolicyBlocks:
    since: datetime | None
    domains: list[DomainCount]
    total: int
    refreshed_at: datetime | None = None


@dataclass(frozen=True)
class Counts:
    """The per-list counts and when they were made."""

    lists: list[ListCount] = field(default_factory=list)
    refreshed_at: datetime | None = None


def list_counts(session: Session) -> Counts:
    """Subscriptions per list by status (confirmed, unconfirmed, unsubscribed)."""
    data, at = _snapshot(session, LISTS)
    return Counts(
        [ListCount(int(r["id"]), r["slug"], r["name"], dict(r["by_status"])) for r in data],
        at,
    )


def subscriber_counts(session: Session) -> dict[str, int]:
    """Subscribers by their own status (active, bounced, complained, suppressed)."""
    data, _ = _snapshot(session, SUBSCRIBERS)
    return {str(k): int(v) for k, v in data.items()}


def growth(session: Session, list_id: int | None = None) -> Growth:
    """The DAYS-day series of one list, or of every list together (None)."""
    data, at = _snapshot(session, GROWTH)
    days = list(data["days"])
    found = data["lists"].get(ALL if list_id is None else str(list_id))
    zeros = [0] * len(days)
    series = {name: list(found[name]) if found else list(zeros) for name in SERIES}
    return Growth(days, refreshed_at=at, **series)


def policy_blocks(session: Session) -> PolicyBlocks:
    data, at = _snapshot(session, POLICY)
    return PolicyBlocks(
        _when(data.get("since")),
        [DomainCount(d, int(n)) for d, n in data["domains"]],
        int(data["total"]),
        at,
    )


def bounce_summary(session: Session) -> BounceSummary:
    """Bounce events of the last DAYS days by kind and by kind and reason (for the
    dashboard and the bounces page)."""
    data, at = _snapshot(session, BOUNCES)
    return BounceSummary(
        _when(data.get("since")),
        {str(k): int(v) for k, v in data["kinds"].items()},
        [ReasonCount(k, r, int(n)) for k, r, n in data["reasons"]],
        at,
    )


def beat_tick(session: Session) -> datetime | None:
    """When beat's refresh last ran on a worker (None: never)."""
    found = store.read(session, BEAT)
    return found[1] if found is not None else None


def _snapshot(session: Session, name: str) -> tuple[Any, datetime]:
    found = store.read(session, name)
    if found is None:  # a fresh install: count once, then never again per request
        refresh(session)
        found = store.read(session, name)
        assert found is not None
    return found


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


# The refresh --------------------------------------------------------------------------


def refresh(session: Session, now: datetime | None = None) -> list[str]:
    """Count everything the console shows and write one snapshot each; flushes, the
    caller commits. Returns the snapshot names written."""
    now = now or utcnow()
    start = window_start(now)
    parts: dict[str, Callable[[], Any]] = {
        LISTS: lambda: _lists(session),
        SUBSCRIBERS: lambda: _subscribers(session),
        GROWTH: lambda: _growth(session, start, now),
        POLICY: lambda: _policy(session, start),
        BOUNCES: lambda: _bounces(session, start),
    }
    for name, compute in parts.items():
        store.write(session, name, compute(), now)
    return list(parts)


def mark_beat(session: Session, now: datetime | None = None) -> None:
    """Beat's tick reached a worker (the refresh task writes it; `stats refresh` does not)."""
    store.write(session, BEAT, {}, now or utcnow())


def window_start(now: datetime) -> datetime:
    """Midnight UTC DAYS-1 days ago: the growth series' first day."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=DAYS - 1)
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


def _lists(session: Session) -> list[dict[str, Any]]:
    per: dict[int, dict[str, int]] = defaultdict(dict)
    for list_id, status, n in session.execute(
        select(Subscription.list_id, Subscription.status, func.count()).group_by(
            Subscription.list_id, Subscription.status
        )
    ):
        per[int(list_id)][str(status)] = int(n)
    rows = session.execute(
        select(MailingList.id, MailingList.slug, MailingList.name).order_by(MailingList.name)
    )
    out = []
    for list_id, slug, name in rows:
        counts = dict.fromkeys((s.value for s in SubscriptionStatus), 0)
        counts.update(per.get(list_id, {}))
        out.append({"id": list_id, "slug": slug, "name": name, "by_status": counts})
    return out


def _subscribers(session: Session) -> dict[str, int]:
    return {
        str(status): int(n)
        for status, n in session.execute(
            select(Subscriber.status, func.count()).group_by(Subscriber.status)
        )
    }


def _day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as 'YYYY-MM-DD' on both databases."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.date(column)  # SQLite keeps UTC text


def _per_day(
    session: Session, column: InstrumentedAttribute[Any], start: datetime
) -> list[tuple[int, str, int]]:
    day = _day(session, column)
    return [
        (int(list_id), str(d), int(n))
        for list_id, d, n in session.execute(
            select(Subscription.list_id, day, func.count())
            .where(column >= start)
            .group_by(Subscription.list_id, day)
        )
    ]


def _growth(session: Session, start: datetime, now: datetime) -> dict[str, Any]:
    first = start.date()
    days = [(first + timedelta(days=i)).isoformat() for i in range(DAYS)]
    index = {d: i for i, d in enumerate(days)}
    found: dict[str, dict[str, list[int]]] = {}

    def add(list_key: str, series: str, day: str, n: int) -> None:
        at = index.get(day[:10])
        if at is None:  # a timestamp from the future (a clock ahead): not in the window
            return
        lists = found.setdefault(list_key, {name: [0] * DAYS for name in SERIES})
        lists[series][at] += n

    columns = {
        "joins": Subscription.created_at,
        "confirmations": Subscription.confirmed_at,
        "leaves": Subscription.unsubscribed_at,
    }
    for series, column in columns.items():
        for list_id, day, n in _per_day(session, column, start):
            add(str(list_id), series, day, n)
            add(ALL, series, day, n)
    bounce_day = _day(session, BounceEvent.created_at)
    for list_id, day, n in session.execute(
        select(Digest.list_id, bounce_day, func.count())
        .select_from(BounceEvent)
        .join(Delivery, Delivery.id == BounceEvent.delivery_id)
        .join(Digest, Digest.id == Delivery.digest_id)
        .where(BounceEvent.created_at >= start, BounceEvent.kind.in_(GROWTH_KINDS))
        .group_by(Digest.list_id, bounce_day)
    ):
        add(str(list_id), "bounces", str(day), int(n))
        add(ALL, "bounces", str(day), int(n))
    found.setdefault(ALL, {name: [0] * DAYS for name in SERIES})
    return {"days": days, "lists": found}


def _policy(session: Session, start: datetime) -> dict[str, Any]:
    domain = func.coalesce(BounceEvent.remote_domain, "")
    rows = session.execute(
        select(domain, func.count())
        .where(BounceEvent.created_at >= start, BounceEvent.kind == "policy")
        .group_by(domain)
        .order_by(func.count().desc(), domain)
    ).all()
    return {
        "since": start.isoformat(),
        "domains": [[d or "(unknown)", int(n)] for d, n in rows[:TOP_DOMAINS]],
        "total": sum(int(n) for _, n in rows),
    }


def _bounces(session: Session, start: datetime) -> dict[str, Any]:
    rows = session.execute(
        select(BounceEvent.kind, BounceEvent.reason, func.count())
        .where(BounceEvent.created_at >= start)
        .group_by(BounceEvent.kind, BounceEvent.reason)
        .order_by(func.count().desc(), BounceEvent.kind, BounceEvent.reason)
    ).all()
    kinds: dict[str, int] = defaultdict(int)
    for kind, _, n in rows:
        kinds[str(kind)] += int(n)
    return {
        "since": start.isoformat(),
        "kinds": dict(kinds),
        "reasons": [[str(k), str(r), int(n)] for k, r, n in rows[:TOP_REASONS]],
    }


def day_labels(days: list[str]) -> list[str]:
    """'2026-11-30' → '30 Nov', for a chart's axis."""
    return [f"{date.fromisoformat(d).day} {date.fromisoformat(d):%b}" for d in days]
