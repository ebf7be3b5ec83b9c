"""Per-send counts for the console, cheap enough for a list of sends over 10 M deliveries.

Where the numbers come from, and why:

* A send that is open (sending, paused, …) is counted live from ix_deliveries_digest_
  status (index-only ranges of its own rows): the small statuses each, the smaller of
  queued and sent, the other by difference from the total (see `_count_live`). Each
  process keeps the answer for a second (longer when counting took long, `_live_counts`),
  so a page, its event stream and every other watcher of the same send share one count.
* A finished send (sent, cancelled) changes only when a late DSN or a complaint arrives,
  or when it is retried. Its counts are counted once and kept in the StatsSnapshot
  "send:<id>" with `mark`, the highest bounce_events.id at that time. At most once a
  minute (`RECHECK_SECONDS`) a reader looks for bounce events above the mark that belong
  to this send (a short id range joined on the deliveries' primary key): only when there
  are any is the send counted again; either way the mark moves up, so the next look is
  short too. A retry sets finished_at anew, which makes the snapshot stale by itself.
* The rate over time: while a send is open and watched, a sample (time, messages done)
  is added to its snapshot every `SAMPLE_SECONDS`; when it has finished, the messages
  per interval are counted once from deliveries.updated_at (when its page first asks)
  and kept with the counts.
* Deferrals per receiving domain: at most DEFERRED_SCAN deferred rows of the send,
  kept by each process for a few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from newsletter.models import (
    BounceEvent,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    StatsSnapshot,
    Subscriber,
    utcnow,
)

STATUSES = tuple(s.value for s in DeliveryStatus)  # queued sending sent deferred failed bounced
FINAL = frozenset({DigestStatus.sent, DigestStatus.cancelled})
LIVE_SECONDS = 1.0
RECHECK_SECONDS = 60.0
SAMPLE_SECONDS = 3.0
MAX_SAMPLES = 240
BUCKETS = 40
MIN_BUCKET_SECONDS = 3.0  # batches land in bursts: shorter intervals only zigzag
DEFERRED_SCAN = 1000  # deferred rows read for the per-domain table (the top ten need few)

log = logging.getLogger(__name__)
Counts = dict[str, int]
COMPLAINTS_SECONDS = 30.0
SMALL = ("sending", "deferred", "bounced", "failed")
DEFERRALS_SECONDS = 5.0


def snapshot_name(digest_id: int) -> str:
    return f"send:{digest_id}"


def count_now(session: Session, digest_id: int) -> Counts:
    """The send's deliveries by status, its complaints, and the total (no cache)."""
    counts: Counts = dict.fromkeys(STATUSES, 0)
    for status, n in session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.digest_id == digest_id)
        .group_by(Delivery.status)
    ):
        counts[str(status)] = counts.get(str(status), 0) + int(n)
    counts["total"] = sum(counts[s] for s in STATUSES)
    counts["complained"] = _complaints(session, digest_id)
    return counts


def _complaints(session: Session, digest_id: int) -> int:
    # No complaint about a send predates its start: the bound keeps the join to the last
    # days' complaints (ix_bounce_events_created_at) instead of every complaint ever made.
    since = session.scalar(select(Digest.started_at).where(Digest.id == digest_id))
    query = (
        select(func.count())
        .select_from(BounceEvent)
        .join(Delivery, Delivery.id == BounceEvent.delivery_id)
        .where(Delivery.digest_id == digest_id, BounceEvent.kind == "complaint")
    )
    if since is not None:
        query = query.where(BounceEvent.created_at >= since)
    return int(session.scalar(query) or 0)


@dataclass
class _Live:
    """What a process remembers of an open send between two counts."""

    at: float = -1e9  # monotonic time of the last count
    ttl: float = LIVE_SECONDS
    counts: Counts = field(default_factory=dict)
    total: int | None = None  # fixed once the whole ledger is written
    complained_at: float = -1e9
    busy: bool = False  # a thread is counting it again


_live: dict[int, _Live] = {}
_deferrals: dict[int, tuple[float, list[tuple[str, int]]]] = {}
_live_lock = threading.Lock()


def _count_live(session: Session, digest: Digest, live: _Live) -> Counts:
    """An open send's counts without reading all of its index entries each time.

    The small statuses (sending, deferred, bounced, failed) are index ranges of their
    own; of queued and sent only the smaller (by the last count) is counted, the other
    is the total less the rest. The total is counted once the ledger is complete, and
    complaints (which come hours later) every COMPLAINTS_SECONDS."""
    digest_id = digest.id
    counts: Counts = dict.fromkeys(STATUSES, 0)
    for status, n in session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.digest_id == digest_id, Delivery.status.in_(SMALL))
        .group_by(Delivery.status)
    ):
        counts[str(status)] = int(n)
    if live.total is None and digest.ledger_complete:
        # Another process (or this one before a restart) may have counted it already.
        row = session.get(StatsSnapshot, snapshot_name(digest_id))
        kept = (row.data or {}).get("total") if row is not None else None
        live.total = int(kept) if isinstance(kept, int) else None
    if live.total is None or not digest.ledger_complete:
        total = int(
            session.scalar(select(func.count()).where(Delivery.digest_id == digest_id)) or 0
        )
        live.total = total if digest.ledger_complete else None
    else:
        total = live.total
    rest = total - sum(counts[s] for s in SMALL)
    counted = "queued" if live.counts.get("queued", 0) <= live.counts.get("sent", 0) else "sent"
    other = "sent" if counted == "queued" else "queued"
    counts[counted] = int(
        session.scalar(
            select(func.count()).where(Delivery.digest_id == digest_id, Delivery.status == counted)
        )
        or 0
    )
    counts[other] = max(rest - counts[counted], 0)
    counts["total"] = total
    now = time.monotonic()
    if now - live.complained_at >= COMPLAINTS_SECONDS:
        counts["complained"] = _complaints(session, digest_id)
        live.complained_at = now
    else:
        counts["complained"] = live.counts.get("complained", 0)
    return counts


def _store(live: _Live, found: Counts, started: float) -> None:
    with _live_lock:
        live.at, live.counts = time.monotonic(), found
        live.ttl = max(LIVE_SECONDS, 4 * (live.at - started))
        if len(_live) > 1000:  # forget sends nobody watches any more
            for key, old in list(_live.items()):
                if live.at - old.at > 600:
                    del _live[key]


def _recount(digest_id: int, live: _Live) -> None:
    """Count an open send again off the request (one thread per send at a time)."""
    from newsletter.db import session_scope

    try:
        with session_scope() as session:
            digest = session.get(Digest, digest_id)
            if digest is not None:
                _store(live, _count_live(session, digest, live), time.monotonic())
                _sample(session, digest_id, live.counts, digest.ledger_complete)
    except Exception:  # noqa: BLE001 - the next look counts again; a page shows the last
        log.warning("counting send %s failed", digest_id, exc_info=True)
    finally:
        with _live_lock:
            live.busy = False


def _live_counts(session: Session, digest: Digest) -> tuple[Counts, bool]:
    """Counts of an open send, and whether they were counted now.

    Only the first look at a send waits for a count. After that a request gets the last
    counts at once, and when they are older than `ttl` a thread counts again: a page never
    waits for a million-reader ledger, the event stream shows the new counts a tick
    later. `ttl` is LIVE_SECONDS, or four times what the last count took when that was
    longer, so a watched send costs the database at most a fifth of its time."""
    with _live_lock:
        live = _live.setdefault(digest.id, _Live())
        known = bool(live.counts)
        again = known and not live.busy and time.monotonic() - live.at >= live.ttl
        if again:
            live.busy = True
    if again:
        threading.Thread(target=_recount, args=(digest.id, live), daemon=True).start()
    if known:
        return dict(live.counts), False
    started = time.monotonic()
    _store(live, _count_live(session, digest, live), started)
    return dict(live.counts), True


def _mark(session: Session) -> int:
    return int(session.scalar(select(func.max(BounceEvent.id))) or 0)


def _new_bounces(session: Session, digest_id: int, mark: int) -> bool:
    return (
        session.scalar(
            select(BounceEvent.id)
            .join(Delivery, Delivery.id == BounceEvent.delivery_id)
            .where(BounceEvent.id > mark, Delivery.digest_id == digest_id)
            .limit(1)
        )
        is not None
    )


def preload(session: Session, digests: list[Digest]) -> list[StatsSnapshot]:
    """The snapshots of a page of sends in one query, so that counting each finds its
    own in the session instead of asking the database once per send. The caller holds
    the list while it counts: the session keeps only weak references."""
    names = [snapshot_name(d.id) for d in digests]
    if not names:
        return []
    return list(session.scalars(select(StatsSnapshot).where(StatsSnapshot.name.in_(names))))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _final_snapshot(
    session: Session, digest: Digest, *, series: bool = False, may_count: bool = True
) -> dict[str, Any] | None:
    """The kept counts of a finished send (see the module's docstring for when they are
    counted again), with its rate buckets when `series` (only the send's own page needs
    them). None when they were never counted and `may_count` is false."""
    row = session.get(StatsSnapshot, snapshot_name(digest.id))
    data: dict[str, Any] = dict(row.data) if row is not None and row.data else {}
    now = utcnow()
    fresh = (
        row is not None and data.get("finished_at") == _iso(digest.finished_at) and "counts" in data
    )
    if not fresh and not may_count:
        return None
    changed = False
    if not fresh:
        data = {
            "finished_at": _iso(digest.finished_at),
            "mark": _mark(session),
            "counts": count_now(session, digest.id),
        }
        changed = True
    elif row is not None and (now - row.refreshed_at).total_seconds() >= RECHECK_SECONDS:
        mark = _mark(session)
        if mark != data.get("mark"):
            if _new_bounces(session, digest.id, int(data.get("mark") or 0)):
                data["counts"] = count_now(session, digest.id)
            data["mark"] = mark
        changed = True
    if series and "series" not in data:
        data["series"] = rate_buckets(session, digest)
        changed = True
    if not changed:
        return data
    if row is None:
        session.add(StatsSnapshot(name=snapshot_name(digest.id), data=data, refreshed_at=now))
        session.flush()
    else:
        row.data, row.refreshed_at = data, now
    return data


def counts(session: Session, digest: Digest) -> Counts:
    """The send's counts by delivery status, `complained` and `total` (see module doc).

    A finished send's snapshot may be written here: call it inside a unit of work that
    commits (session_scope)."""
    found = counts_if_kept(session, digest, may_count=True)
    assert found is not None
    return found


def counts_if_kept(session: Session, digest: Digest, *, may_count: bool) -> Counts | None:
    """`counts`, but None for a finished send never counted before unless `may_count`
    (a page that has spent its time budget shows that one as being counted)."""
    if digest.status in FINAL:
        kept = _final_snapshot(session, digest, may_count=may_count)
        return dict(kept["counts"]) if kept is not None else None
    if digest.started_at is None:
        return {**dict.fromkeys(STATUSES, 0), "total": 0, "complained": 0}
    found, fresh = _live_counts(session, digest)
    if fresh:
        _sample(session, digest.id, found, digest.ledger_complete)
    return dict(found)


def done(found: Counts) -> int:
    """Messages the receiving servers have answered for good."""
    return found.get("sent", 0) + found.get("bounced", 0) + found.get("failed", 0)


def bounce_rate(found: Counts) -> float:
    """Hard bounces plus complaints over what was delivered or bounced: the measure the
    auto-pause uses (sending.control.check_bounce_rate)."""
    delivered = found.get("sent", 0) + found.get("bounced", 0)
    if not delivered:
        return 0.0
    return (found.get("bounced", 0) + found.get("complained", 0)) / delivered


def average_rate(digest: Digest, found: Counts) -> float:
    """Messages a second since the send started (to its end, once finished)."""
    if digest.started_at is None:
        return 0.0
    end = digest.finished_at or utcnow()
    elapsed = (end - digest.started_at).total_seconds()
    return round(done(found) / elapsed, 1) if elapsed > 0 else 0.0


# The rate over time -----------------------------------------------------------------


def _sample(session: Session, digest_id: int, found: Counts, ledger_complete: bool) -> None:
    """Add (now, done) to an open send's samples if the last is SAMPLE_SECONDS old (and
    keep its total once fixed, for the other processes' first count).

    In its own short transaction: a watcher must never hold a write lock while it reads.
    A sample lost to a busy database (SQLite under a sending worker) costs one point of a
    chart, so that one error is let go."""
    from newsletter.db import session_scope

    now = utcnow()
    try:
        with session_scope() as own:
            row = own.get(StatsSnapshot, snapshot_name(digest_id))
            data: dict[str, Any] = dict(row.data) if row is not None and row.data else {}
            samples: list[list[Any]] = list(data.get("samples", []))
            if samples:
                last = datetime.fromisoformat(samples[-1][0])
                if (now - last).total_seconds() < SAMPLE_SECONDS:
                    return
            samples.append([now.isoformat(), done(found)])
            data["samples"] = samples[-MAX_SAMPLES:]
            if ledger_complete:
                data["total"] = found["total"]
            if row is None:
                own.add(StatsSnapshot(name=snapshot_name(digest_id), data=data, refreshed_at=now))
            else:
                row.data, row.refreshed_at = data, now
    except OperationalError:
        return


def _epoch(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def rate_buckets(session: Session, digest: Digest) -> list[list[Any]]:
    """A finished send's messages per second in up to BUCKETS equal intervals from its
    start to its end, as [[interval start ISO, messages/s], …] (counted once)."""
    if digest.started_at is None or digest.finished_at is None:
        return []
    start, end = digest.started_at, digest.finished_at
    span = max((end - start).total_seconds(), 1.0)
    width = max(span / BUCKETS, MIN_BUCKET_SECONDS)
    t0 = start.timestamp()
    seconds = _epoch(session, Delivery.updated_at)
    bucket = func.floor((sql_cast(seconds, Float) - t0) / width)
    per: Counter[int] = Counter()
    for index, n in session.execute(
        select(bucket, func.count())
        .where(
            Delivery.digest_id == digest.id,
            Delivery.status.in_(
                (DeliveryStatus.sent, DeliveryStatus.bounced, DeliveryStatus.failed)
            ),
            Delivery.updated_at.is_not(None),
        )
        .group_by(bucket)
    ):
        if index is not None:
            per[min(max(int(index), 0), BUCKETS - 1)] += int(n)
    count = min(BUCKETS, max(1, int(span // width) + 1))
    return [
        [datetime.fromtimestamp(t0 + i * width, UTC).isoformat(), round(per[i] / width, 1)]
        for i in range(count)
    ]


def rate_series(session: Session, digest: Digest) -> list[list[Any]]:
    """[[time ISO, messages/s], …]: the kept buckets of a finished send, the differences
    between the samples of an open one."""
    if digest.status in FINAL and digest.started_at is not None:
        kept = _final_snapshot(session, digest, series=True)
        return list(kept["series"]) if kept is not None else []
    row = session.get(StatsSnapshot, snapshot_name(digest.id))
    samples = (row.data or {}).get("samples", []) if row is not None else []
    points: list[list[Any]] = []
    previous: tuple[datetime, int] | None = None
    if digest.started_at is not None:
        previous = (digest.started_at, 0)
    for at_text, n in samples:
        at = datetime.fromisoformat(at_text)
        if previous is not None and at > previous[0]:
            seconds = (at - previous[0]).total_seconds()
            points.append([at.isoformat(), round(max(n - previous[1], 0) / seconds, 1)])
        previous = (at, int(n))
    return points


# Deferrals ---------------------------------------------------------------------------


def deferrals_by_domain(session: Session, digest_id: int, top: int = 10) -> list[tuple[str, int]]:
    """The receiving domains with the most deferred deliveries of the send (read from at
    most DEFERRED_SCAN deferred rows, through ix_deliveries_digest_status), kept by each
    process for DEFERRALS_SECONDS."""
    now = time.monotonic()
    with _live_lock:
        hit = _deferrals.get(digest_id)
    if hit is not None and now - hit[0] < DEFERRALS_SECONDS:
        return hit[1][:top]
    # The deferred rows first, then their addresses by primary key: joined the other way
    # the planner may hash all million readers to look up a few thousand.
    ids = (
        select(Delivery.subscriber_id)
        .where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.deferred)
        .limit(DEFERRED_SCAN)
    )
    emails = session.scalars(select(Subscriber.email).where(Subscriber.id.in_(ids)))
    found = Counter(email.rpartition("@")[2].lower() for email in emails).most_common(10)
    with _live_lock:
        if len(_deferrals) > 1000:
            _deferrals.clear()
        _deferrals[digest_id] = (now, found)
    return found[:top]
