"""/console: the dashboard. Subscribers per list with their 30-day growth, the last sends,
policy blocks by receiving domain, bounces, and the health of each part of the service.

Fast on a million readers because nothing here counts: the numbers are the snapshots
newsletter/stats/ keeps (refreshed by beat), the last sends' counts come from
newsletter.stats.sends, and the health checks (up to a second each over the network)
run side by side in a small pool and are kept for HEALTH_SECONDS in the process: a page
shows the last answer while a newer one is made, and waits only when there is none.

    GET /console?list=SLUG   the growth chart of one list (default: every list)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.models import Digest, MailingList
from newsletter.stats import aggregates, health
from newsletter.stats import sends as send_stats
from newsletter.web.console import charts
from newsletter.web.console.core import ActionFailed, SignedIn, render

router = APIRouter()
LAST_SENDS = 5
HEALTH_SECONDS = 10.0
HEALTH_WAIT = 1.5  # the longest a page waits for a check that has no answer yet


@router.get("", response_class=HTMLResponse)
def dashboard(
    request: Request,
    current: SignedIn,
    list_slug: Annotated[str | None, Query(alias="list", max_length=64)] = None,
) -> HTMLResponse:
    settings = get_settings()
    checks = start_checks(settings)  # in parallel with the reads below
    with session_scope() as session:
        context = _numbers(session, list_slug or None)
        tick = aggregates.beat_tick(session)
    found = collect(checks)
    found.append(health.beat(settings, tick))
    return render(
        request,
        "dashboard.html",
        health=found,
        refresh_seconds=int(settings.stats_refresh_seconds),
        **context,
    )


def _numbers(session: Session, list_slug: str | None) -> dict[str, Any]:
    counts = aggregates.list_counts(session)
    chosen = None
    if list_slug is not None:
        chosen = next((c for c in counts.lists if c.slug == list_slug), None)
        if chosen is None:
            raise ActionFailed(404, f"There is no list {list_slug!r}.")
    grown = aggregates.growth(session, chosen.id if chosen else None)
    whose = f"“{chosen.name}”" if chosen else "all lists"
    title = f"Growth of {whose}, last {len(grown.days)} days"
    labels = aggregates.day_labels(grown.days)
    growth_chart = charts.figure(
        charts.line_chart(grown.series(), labels, title, "readers per day"),
        charts.line_table(grown.series(), grown.days, title, "Day (UTC)"),
    )
    blocks = aggregates.policy_blocks(session)
    items = [(d.domain, float(d.count)) for d in blocks.domains]
    blocks_title = "Policy blocks by receiving domain, last 30 days"
    blocks_chart = (
        charts.figure(
            charts.bar_chart(items, blocks_title, value_label="blocks"),
            charts.bar_table(items, blocks_title, ("Receiving domain", "Blocks")),
        )
        if items
        else None
    )
    return {
        "lists": counts.lists,
        "refreshed_at": counts.refreshed_at,
        "readers": aggregates.subscriber_counts(session),
        "chosen": chosen,
        "growth_chart": growth_chart,
        "growth_totals": {name: sum(values) for name, values in grown.series().items()},
        "blocks": blocks,
        "blocks_chart": blocks_chart,
        "bounces": aggregates.bounce_summary(session),
        "sends": last_sends(session),
    }


def last_sends(session: Session) -> list[dict[str, Any]]:
    """The latest sends that started, with delivered, bounced and complained."""
    digests = session.scalars(
        select(Digest)
        .options(
            load_only(
                Digest.id,
                Digest.list_id,
                Digest.subject,
                Digest.status,
                Digest.started_at,
                Digest.finished_at,
            )
        )
        .where(Digest.started_at.is_not(None))
        .order_by(Digest.started_at.desc(), Digest.id.desc())
        .limit(LAST_SENDS)
    ).all()
    ids = {d.list_id for d in digests}
    found_names = session.execute(
        select(MailingList.id, MailingList.name).where(MailingList.id.in_(ids))
    )
    names = {list_id: name for list_id, name in found_names}
    rows = []
    for digest in digests:
        found = send_stats.counts(session, digest)
        rows.append(
            {
                "id": digest.id,
                "list": names.get(digest.list_id, ""),
                "subject": digest.subject,
                "status": str(digest.status),
                "started_at": digest.started_at,
                "total": found.get("total", 0),
                "delivered": found.get("sent", 0),
                "bounced": found.get("bounced", 0),
                "complained": found.get("complained", 0),
            }
        )
    return rows


# Health, checked side by side and kept a few seconds -------------------------------

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="console-health")
_lock = threading.Lock()
_kept: dict[str, tuple[float, health.Check]] = {}
_running: dict[str, Future[health.Check]] = {}


def _workers_ping(settings: Settings) -> health.Check:
    if settings.embedded:
        return health.workers(None, embedded=True)
    from workers.app import app

    try:
        replies = app.control.ping(timeout=health.TIMEOUT) or []
    except Exception:  # noqa: BLE001 - a broker that cannot broadcast: nobody answered
        replies = []
    return health.workers([name for reply in replies for name in reply], embedded=False)


CHECKS: dict[str, Callable[[Settings], health.Check]] = {
    "Database": health.database,
    "Broker": health.broker,
    "Workers": _workers_ping,
    "SMTP": health.smtp,
}


def start_checks(settings: Settings) -> dict[str, tuple[health.Check | None, Future[health.Check]]]:
    """For each check: the kept answer if any, and a future for a fresh one if the kept
    one is older than HEALTH_SECONDS (one check of each kind at a time per process)."""
    now = time.monotonic()
    started: dict[str, tuple[health.Check | None, Future[health.Check]]] = {}
    with _lock:
        for name, check in CHECKS.items():
            kept = _kept.get(name)
            if kept is not None and now - kept[0] < HEALTH_SECONDS:
                done: Future[health.Check] = Future()
                done.set_result(kept[1])
                started[name] = (kept[1], done)
                continue
            future = _running.get(name)
            if future is None:
                future = _running[name] = _pool.submit(_run, name, check, settings)
            started[name] = (kept[1] if kept else None, future)
    return started


def _run(name: str, check: Callable[[Settings], health.Check], settings: Settings) -> health.Check:
    try:
        result = check(settings)
    except Exception as exc:  # noqa: BLE001 - a check that broke says so, once
        result = health.Check(name, "down", f"check failed ({type(exc).__name__})")
    with _lock:
        _kept[name] = (time.monotonic(), result)
        _running.pop(name, None)
    return result


def collect(
    started: dict[str, tuple[health.Check | None, Future[health.Check]]],
) -> list[health.Check]:
    deadline = time.monotonic() + HEALTH_WAIT
    out = []
    for name, (kept, future) in started.items():
        if future.done() or kept is None:
            try:
                out.append(future.result(timeout=max(deadline - time.monotonic(), 0)))
                continue
            except FutureTimeout:
                if kept is None:
                    out.append(health.Check(name, "late", "still checking: reload in a moment"))
                    continue
        assert kept is not None
        out.append(kept)  # the last answer while a fresh one is on its way
    return out
