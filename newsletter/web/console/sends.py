"""Sends: the list, one send's progress (live through Server-Sent Events), and its controls.

/console/sends                the sends awaiting approval, then the latest (keyset: ?after=ID)
/console/sends/{id}           counts, progress, rate over time, deferrals per receiving
                              domain, bounce and complaint rate against the auto-pause
                              threshold, clicks per story (people, readers, machines)
                              and opens when the list tracks them; pause / resume /
                              cancel / retry failed and approve / reject for those
                              who may send
/console/sends/{id}/events    text/event-stream: `event: progress` (JSON) every second
                              while the send is open, then one last and `event: end`
POST /console/sends/{id}/{action}   the same domain actions as `newsletter sends …`

The numbers come from newsletter.stats.sends (live counts cached a second per process,
finished sends from their snapshot), so a page or a stream never counts the whole ledger.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from newsletter.accounts import sessions
from newsletter.accounts.roles import Capability
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.engagement.report import EngagementReport, engagement_report
from newsletter.models import Digest, DigestStatus, MailingList
from newsletter.sending import actions
from newsletter.stats import sends as stats
from newsletter.web.console import charts, core

router = APIRouter()
PAGE = 25
COUNT_BUDGET = 0.1  # seconds a list page may spend counting finished sends
TICK_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
SESSION_CHECK_SECONDS = 30.0
# The states a stream follows; in any other (sent, cancelled, a draft again) it ends.
OPEN = frozenset({DigestStatus.sending, DigestStatus.paused, DigestStatus.scheduled})
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
STEER = {
    "pause": (actions.pause, "Paused: batches stop within about a second."),
    "resume": (actions.resume, "Resumed."),
    "cancel": (actions.cancel, "Cancelled: nothing more is sent."),
    "retry": (actions.retry_failed, "The failed deliveries are queued again."),
    "approve": (actions.approve, "Approved: the send has started."),
    "reject": (actions.reject, "Refused: the digest is a draft again."),
}
LABELS = {DigestStatus.awaiting_approval.value: "awaiting approval"}


def label(status: str) -> str:
    return LABELS.get(str(status), str(status))


def _list_slugs(session: Session, list_ids: set[int]) -> dict[int, str]:
    if not list_ids:
        return {}
    rows = session.execute(
        select(MailingList.id, MailingList.slug).where(MailingList.id.in_(list_ids))
    )
    return {int(i): str(s) for i, s in rows}


def summary(
    session: Session, digest: Digest, slug: str, *, may_count: bool = True
) -> dict[str, Any]:
    """One send's numbers for a page row, the send page and the event stream
    (`counted` false: a finished send not counted yet, left for a later view)."""
    kept = stats.counts_if_kept(session, digest, may_count=may_count)
    counted = kept is not None
    found = (
        kept
        if kept is not None
        else {**dict.fromkeys(stats.STATUSES, 0), "complained": 0, "total": 0}
    )
    settings = get_settings()
    done = stats.done(found)
    total = found["total"]
    rate = stats.bounce_rate(found)
    return {
        "id": digest.id,
        "list": slug,
        "subject": digest.subject,
        "status": str(digest.status),
        "label": label(digest.status),
        "final": digest.status in stats.FINAL,
        "counted": counted,
        "total": total,
        # In flight counts as queued: it is not delivered until the server said so.
        "queued": found["queued"] + found["sending"],
        "sent": found["sent"],
        "deferred": found["deferred"],
        "bounced": found["bounced"],
        "failed": found["failed"],
        "complained": found["complained"],
        "done": done,
        "percent": round(100 * done / total, 1) if total else 0.0,
        "rate": stats.average_rate(digest, found),
        "bounce_rate": round(100 * rate, 2),
        "threshold": round(100 * settings.send_bounce_threshold, 2),
        "over_threshold": rate > settings.send_bounce_threshold,
        "min_deliveries": settings.send_bounce_min_deliveries,
        "pause_reason": digest.pause_reason,
        "ledger_complete": digest.ledger_complete,
        "started_at": digest.started_at,
        "finished_at": digest.finished_at,
        "requested_by": digest.requested_by,
        "approved_by": digest.approved_by,
    }


def _sends_page(after: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int | None]:
    """(awaiting approval, the latest sends after `after`, the next page's `after`)."""
    with session_scope() as session:
        waiting: list[Digest] = []
        if after is None:
            waiting = list(
                session.scalars(
                    select(Digest)
                    .where(Digest.status == DigestStatus.awaiting_approval)
                    .order_by(Digest.id.desc())
                    .limit(PAGE)
                )
            )
        query = (
            select(Digest)
            .where(Digest.started_at.is_not(None), Digest.status != DigestStatus.awaiting_approval)
            .order_by(Digest.id.desc())
            .limit(PAGE + 1)
        )
        if after is not None:
            query = query.where(Digest.id < after)
        latest = list(session.scalars(query))
        more = len(latest) > PAGE
        latest = latest[:PAGE]
        slugs = _list_slugs(session, {d.list_id for d in (*waiting, *latest)})
        _held = stats.preload(session, [*waiting, *latest])  # kept in the session while counting
        # A finished send is counted once (then kept); a page that meets many never
        # counted (a fresh upgrade) counts for COUNT_BUDGET and leaves the rest to its
        # next view instead of answering in seconds.
        budget = time.monotonic() + COUNT_BUDGET
        return (
            [summary(session, d, slugs.get(d.list_id, "")) for d in waiting],
            [
                summary(session, d, slugs.get(d.list_id, ""), may_count=time.monotonic() < budget)
                for d in latest
            ],
            latest[-1].id if more and latest else None,
        )


@router.get("/sends", response_class=HTMLResponse)
def sends_page(
    request: Request,
    current: core.SignedIn,
    after: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> HTMLResponse:
    waiting, latest, next_after = _sends_page(after)
    return core.render(
        request, "sends.html", waiting=waiting, latest=latest, after=after, next_after=next_after
    )


def _load(session: Session, send_id: int) -> tuple[Digest, str]:
    digest = session.get(Digest, send_id)
    if digest is None or (
        digest.started_at is None and digest.status != DigestStatus.awaiting_approval
    ):
        raise core.ActionFailed(404, f"There is no send {send_id}.")
    slug = session.scalar(select(MailingList.slug).where(MailingList.id == digest.list_id))
    return digest, slug or ""


def rate_chart(series: list[list[Any]], send_id: int) -> Markup:
    """The rate over time as an SVG line with its table (times shown as HH:MM:SS UTC)."""
    labels = [datetime.fromisoformat(at).strftime("%H:%M:%S") for at, _ in series]
    values = {"messages/s": [float(v) for _, v in series]}
    title = "Sending rate over time"
    chart = charts.line_chart(values, labels, title, "messages/s", chart_id=f"rate-{send_id}")
    table = charts.line_table(values, labels, f"{title} (UTC)", label_header="Time (UTC)")
    return charts.figure(chart, table)


def _send_view(send_id: int) -> dict[str, Any]:
    with session_scope() as session:
        digest, slug = _load(session, send_id)
        view = summary(session, digest, slug)
        series = stats.rate_series(session, digest)
        view["chart"] = rate_chart(series, send_id)
        view["points"] = len(series)
        view["deferrals"] = stats.deferrals_by_domain(session, send_id)
        report = engagement_report(session, send_id)
        view["engagement"] = report
        view["clicks_chart"] = clicks_chart(report, send_id) if report else None
        return view


def clicks_chart(report: EngagementReport, send_id: int) -> Markup | None:
    """People's clicks per story as horizontal bars (the table beside it says the same
    with readers and machine clicks); None when nobody clicked yet."""
    if not report.clicks:
        return None
    items = [(story.title, float(story.clicks)) for story in report.stories]
    return charts.bar_chart(
        items,
        "Clicks per story (people)",
        value_label="clicks",
        desc="Clicks by people on each story's links; machine clicks are not included.",
        chart_id=f"clicks-{send_id}",
    )


@router.get("/sends/{send_id}", response_class=HTMLResponse)
def send_page(request: Request, send_id: Id, current: core.SignedIn) -> HTMLResponse:
    view = _send_view(send_id)
    mine = bool(view["requested_by"]) and (
        str(view["requested_by"]).lower() == current.actor.name.lower()
    )
    return core.render(request, "send.html", send=view, mine=mine)


# Live progress ------------------------------------------------------------------------


def _progress(send_id: int, points: int) -> dict[str, Any]:
    """The event's data: the numbers, and the chart again only when it gained a point."""
    with session_scope() as session:
        digest = session.get(Digest, send_id)
        if digest is None:
            return {"id": send_id, "final": True, "gone": True}
        slug = session.scalar(select(MailingList.slug).where(MailingList.id == digest.list_id))
        view = summary(session, digest, slug or "")
        series = stats.rate_series(session, digest)
    for key in ("started_at", "finished_at"):
        value = view[key]
        view[key] = value.isoformat() if value is not None else None
    view["points"] = len(series)
    if len(series) != points:
        view["chart"] = str(rate_chart(series, send_id))
    return view


def _still_signed_in(cookie: str | None) -> bool:
    with session_scope() as session:
        return sessions.current(session, get_settings(), cookie) is not None


async def _stream_reader(request: Request) -> sessions.Current:
    """Signed in, else 401 (an event stream is never sent to the login form)."""
    try:
        return await core.signed_in(request)
    except core.LoginRequired:
        raise HTTPException(401, "Log in first.") from None


async def progress_events(request: Request, send_id: int) -> AsyncIterator[str]:
    """`progress` every TICK_SECONDS while the send is open; after it is final one last
    `progress` and `end`. A comment now and then keeps proxies from closing an idle
    stream; the stream stops when the browser goes away or the session ends."""
    yield "retry: 3000\n\n"
    loop = asyncio.get_running_loop()
    beat = checked = loop.time()
    points = -1
    cookie = request.cookies.get(core.COOKIE)
    while True:
        if await request.is_disconnected():
            return
        data = await run_in_threadpool(_progress, send_id, points)
        points = int(data.get("points", points))
        yield f"event: progress\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        if data["final"] or data.get("status") not in OPEN:
            yield "event: end\ndata: {}\n\n"
            return
        now = loop.time()
        if now - beat >= HEARTBEAT_SECONDS:
            beat = now
            yield ": heartbeat\n\n"
        if now - checked >= SESSION_CHECK_SECONDS:
            checked = now
            if not await run_in_threadpool(_still_signed_in, cookie):
                yield "event: end\ndata: {}\n\n"
                return
        await asyncio.sleep(TICK_SECONDS)


@router.get("/sends/{send_id}/events")
async def send_events(request: Request, send_id: Id) -> StreamingResponse:
    await _stream_reader(request)
    exists = await run_in_threadpool(_exists, send_id)
    if not exists:
        raise HTTPException(404, f"There is no send {send_id}.")
    return StreamingResponse(
        progress_events(request, send_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _exists(send_id: int) -> bool:
    with session_scope() as session:
        return session.get(Digest, send_id) is not None


# Controls ------------------------------------------------------------------------------


@router.post("/sends/{send_id}/{action}")
def steer_send(
    send_id: Id,
    action: Annotated[str, Path(max_length=16)],
    current: Annotated[sessions.Current, core.requires(Capability.send)],
) -> RedirectResponse:
    """pause, resume, cancel, retry, approve or reject: the domain decides what is
    allowed from the send's state (and that nobody approves their own request)."""
    found = STEER.get(action)
    if found is None:
        raise HTTPException(404, f"No action {action!r}.")
    steer, done = found
    core.act(steer, send_id)
    return core.redirect(f"{core.PREFIX}/sends/{send_id}", done)
