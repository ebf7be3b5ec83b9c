"""/console/audit: who did what and when, from the console, the CLI and the API.

Newest first, 50 a page; "older" pages by keyset (?before=<id>) so the page costs the
same however long the log grows. Filters: the actor (exact) and an action prefix.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from newsletter import audit
from newsletter.db import session_scope
from newsletter.web.api import MAX_ID
from newsletter.web.console.core import SignedIn, render

router = APIRouter()
PAGE = 50


def _query(before: int | None, actor: str, action: str) -> str:
    fields = {"actor": actor, "action": action, "before": before}
    return urlencode({k: v for k, v in fields.items() if v})


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    current: SignedIn,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    actor: Annotated[str, Query(max_length=320)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    actor, action = actor.strip(), action.strip()
    with session_scope() as session:
        rows = audit.entries(session, before=before, actor=actor, action=action, limit=PAGE + 1)
        shown: list[dict[str, Any]] = [
            {
                "id": e.id,
                "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                "iso": e.at.isoformat(),
                "actor": e.actor,
                "via": e.via,
                "action": e.action,
                "target": e.target,
                "detail": ", ".join(f"{k}: {v}" for k, v in sorted((e.detail or {}).items())),
            }
            for e in rows[:PAGE]
        ]
    older = _query(shown[-1]["id"], actor, action) if len(rows) > PAGE else None
    return render(
        request,
        "audit.html",
        entries=shown,
        actor=actor,
        action=action,
        before=before,
        older=older,
        newest=_query(None, actor, action),
        by_actor=lambda name: _query(None, name, action),
    )
