"""Bounces: events by kind and reason, policy blocks by receiving domain (the last 30
days), and the suppression list with "lift".

Suppressions are kept only as keyed hashes of the addresses (erasure leaves none), so
the list shows hashes and "lift" takes an address the admin types:
bounces.actions.unsuppress, the same action as `newsletter bounces unsuppress`.

The 30-day tables come from newsletter.stats.bounce_summary when that aggregate exists;
otherwise from one grouped query that each process keeps for a minute.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import stats
from newsletter.accounts import sessions
from newsletter.accounts.roles import Capability
from newsletter.bounces import actions
from newsletter.db import session_scope
from newsletter.models import BounceEvent, Suppression, utcnow
from newsletter.web.console import charts, core

router = APIRouter()
PAGE = 50
DAYS = 30
KEEP_SECONDS = 60.0
_kept: dict[str, tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


def _own_summary(session: Session) -> dict[str, Any]:
    """{"by_kind": [(kind, reason, n)…], "policy_domains": [(domain, n)…]} for DAYS days."""
    since = utcnow() - timedelta(days=DAYS)
    n = func.count().label("n")
    by_kind = session.execute(
        select(BounceEvent.kind, BounceEvent.reason, n)
        .where(BounceEvent.created_at >= since, BounceEvent.kind != "ignore")
        .group_by(BounceEvent.kind, BounceEvent.reason)
        .order_by(n.desc())
        .limit(40)
    ).all()
    domains = session.execute(
        select(BounceEvent.remote_domain, n)
        .where(BounceEvent.created_at >= since, BounceEvent.kind == "policy")
        .group_by(BounceEvent.remote_domain)
        .order_by(n.desc())
        .limit(10)
    ).all()
    return {
        "by_kind": [(str(k), str(r or "unspecified"), int(c)) for k, r, c in by_kind],
        "policy_domains": [(str(d or "unknown"), int(c)) for d, c in domains],
    }


def summary(session: Session) -> dict[str, Any]:
    shared = getattr(stats, "bounce_summary", None)
    if shared is not None:
        found: dict[str, Any] = shared(session)
        return found
    now = time.monotonic()
    with _lock:
        hit = _kept.get("summary")
    if hit is not None and now - hit[0] < KEEP_SECONDS:
        return hit[1]
    found = _own_summary(session)
    with _lock:
        _kept["summary"] = (now, found)
    return found


def _page(after: int | None) -> tuple[dict[str, Any], list[Suppression], int | None]:
    with session_scope() as session:
        found = summary(session)
        query = select(Suppression).order_by(Suppression.id.desc()).limit(PAGE + 1)
        if after is not None:
            query = query.where(Suppression.id < after)
        rows = list(session.scalars(query))
        session.expunge_all()
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return found, rows, rows[-1].id if more and rows else None


@router.get("/bounces", response_class=HTMLResponse)
def bounces_page(
    request: Request,
    current: core.SignedIn,
    after: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> HTMLResponse:
    found, suppressions, next_after = _page(after)
    by_kind = [tuple(row) for row in found.get("by_kind", [])]
    totals: dict[str, int] = {}
    for kind, _reason, n in by_kind:
        totals[kind] = totals.get(kind, 0) + int(n)
    kinds = sorted(totals.items(), key=lambda item: -item[1])
    domains = [(str(d), float(n)) for d, n in found.get("policy_domains", [])]
    title = f"Policy blocks by receiving domain, last {DAYS} days"
    chart = charts.figure(
        charts.bar_chart(domains, title, value_label="blocks", chart_id="policy-domains"),
        charts.bar_table(domains, title, headers=("Domain", "Blocks")),
    )
    return core.render(
        request,
        "bounces.html",
        days=DAYS,
        kinds=kinds,
        by_kind=by_kind,
        domains=domains,
        domains_chart=chart,
        suppressions=suppressions,
        after=after,
        next_after=next_after,
    )


@router.post("/bounces/lift")
def lift_suppression(
    current: Annotated[sessions.Current, core.requires(Capability.subscribers)],
    email: Annotated[str, Form(max_length=320)] = "",
) -> RedirectResponse:
    address = email.strip()
    if "@" not in address or len(address) < 3:
        raise core.ActionFailed(422, "Type the whole address to lift, e.g. reader@example.org.")
    core.act(actions.unsuppress, address)
    # The notice names only the domain: the address must not end up in a URL or a log.
    domain = address.rpartition("@")[2]
    return core.redirect(
        f"{core.PREFIX}/bounces",
        f"Suppression lifted: that address at {domain} may be mailed again.",
    )
