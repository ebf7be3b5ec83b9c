"""Admin API for bounces: the operator's view, lifting a suppression, ingesting a message."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from newsletter.bounces import actions
from newsletter.bounces.report import KINDS
from newsletter.config import get_settings
from newsletter.web.api import call
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)], tags=["bounces"])


class UnsuppressIn(BaseModel):
    email: str = Field(max_length=320)


@router.get("/bounces")
def get_bounces(
    kind: str | None = Query(None, pattern="^(" + "|".join(KINDS) + ")$"),
    limit: int = Query(100, ge=1, le=1000),
    days: int = Query(30, ge=1, le=3650),
) -> dict[str, Any]:
    """Recent events, totals per kind, policy blocks per receiving domain, refused input."""
    return call(actions.report, limit=limit, kind=kind, days=days)


@router.post("/bounces/unsuppress")
def post_unsuppress(body: UnsuppressIn) -> dict[str, Any]:
    """Lift a suppression: the operator knows the address works again (409 if none)."""
    return call(actions.unsuppress, body.email)


@router.post("/bounces/ingest")
async def post_ingest(request: Request) -> dict[str, Any]:
    """One bounce, complaint or auto-reply message (message/rfc822) from the operator.

    The operator vouches for it, so a bounce without a VERP token is matched by address.
    """
    limit = get_settings().bounce_max_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        raise HTTPException(413, f"A message may be at most {limit} bytes.")
    raw = await request.body()
    return await run_in_threadpool(call, actions.ingest_message, raw)
