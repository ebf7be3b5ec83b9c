"""`GET /api/bounces`: the operator's view of bounces, policy blocks per domain, refusals."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from newsletter.bounces.report import KINDS, bounce_report
from newsletter.db import session_scope
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)], tags=["bounces"])


@router.get("/bounces")
def get_bounces(
    kind: str | None = Query(None, pattern="^(" + "|".join(KINDS) + ")$"),
    limit: int = Query(100, ge=1, le=1000),
    days: int = Query(30, ge=1, le=3650),
) -> dict[str, Any]:
    with session_scope() as session:
        return bounce_report(session, limit=limit, kind=kind, days=days)
