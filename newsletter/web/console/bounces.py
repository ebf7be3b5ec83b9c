"""Bounces: events by kind and reason, policy blocks by receiving domain (the last 30
days), and the suppression list with "lift".

The 30-day numbers are the maintained aggregates of newsletter.stats (refreshed by beat),
so the page never counts bounce_events. Suppressions are kept only as keyed hashes of
the addresses (erasure leaves none): the list shows hashes, read a page at a time by id
(keyset), and "lift" takes an address the admin types: bounces.actions.unsuppress, the
same action as `newsletter bounces unsuppress`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from newsletter.accounts import sessions
from newsletter.accounts.roles import Capability
from newsletter.bounces import actions
from newsletter.db import session_scope
from newsletter.models import Suppression
from newsletter.stats import aggregates
from newsletter.web.console import charts, core

router = APIRouter()
PAGE = 50


def _page(after: int | None) -> dict[str, Any]:
    with session_scope() as session:
        bounces = aggregates.bounce_summary(session)
        blocks = aggregates.policy_blocks(session)
        query = select(Suppression).order_by(Suppression.id.desc()).limit(PAGE + 1)
        if after is not None:
            query = query.where(Suppression.id < after)
        rows = list(session.scalars(query))
        session.expunge_all()
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    domains = [(d.domain, float(d.count)) for d in blocks.domains[:10]]
    title = f"Policy blocks by receiving domain, last {aggregates.DAYS} days"
    return {
        "days": aggregates.DAYS,
        "kinds": sorted(bounces.kinds.items(), key=lambda item: -item[1]),
        "by_kind": [(r.kind, r.reason or "unspecified", r.count) for r in bounces.reasons],
        "refreshed_at": bounces.refreshed_at,
        "domains": domains,
        "blocks_total": blocks.total,
        "domains_chart": charts.figure(
            charts.bar_chart(domains, title, value_label="blocks", chart_id="policy-domains"),
            charts.bar_table(domains, title, headers=("Domain", "Blocks")),
        ),
        "suppressions": rows,
        "next_after": rows[-1].id if more and rows else None,
    }


@router.get("/bounces", response_class=HTMLResponse)
def bounces_page(
    request: Request,
    current: core.SignedIn,
    after: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> HTMLResponse:
    return core.render(request, "bounces.html", after=after, **_page(after))


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
