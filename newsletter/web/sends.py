"""Admin API for sends: the same counts and controls as `newsletter sends …`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from newsletter.preflight import actions as preflights
from newsletter.sending import actions
from newsletter.web.api import Id, call
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api/sends", dependencies=[Depends(require_admin)], tags=["sends"])
STEER = {
    "pause": actions.pause,
    "resume": actions.resume,
    "cancel": actions.cancel,
    "retry": actions.retry_failed,
    "approve": actions.approve,  # a send awaiting approval, by someone else than who asked
    "reject": actions.reject,
}


class SendIn(BaseModel):
    list: str = Field(min_length=1, max_length=64)
    digest_id: int | None = Field(None, ge=1, le=2**31 - 1)
    skip_preflight: bool = Field(
        False, description="Send even when the preflight finds something that blocks."
    )
    segment: str | None = Field(
        None, min_length=1, max_length=64, description="Only the readers of this segment."
    )
    send_at: str | None = Field(
        None,
        min_length=1,
        max_length=40,
        description="Send later: ISO 8601 (without an offset: the list's time zone).",
    )


@router.get("")
def get_sends() -> list[dict[str, Any]]:
    return call(actions.list_sends)


@router.post("", status_code=201)
def post_send(body: SendIn) -> dict[str, Any]:
    """Send the given digest, else the list's newest draft, else a freshly composed one,
    to the list or one of its segments (`segment`), now or at `send_at`.

    The preflight (GET /api/lists/{slug}/preflight) runs first unless `skip_preflight`:
    when a finding blocks, nothing is sent and the answer is 409 with the report as detail.
    """
    if not body.skip_preflight:
        report = call(preflights.preflight, body.list, body.digest_id, invalid=409)
        if report.blocked:
            raise HTTPException(409, report.record())
    if body.send_at is not None:
        return call(
            actions.schedule, body.list, body.digest_id, body.send_at, body.segment, invalid=409
        )
    return call(actions.send, body.list, body.digest_id, body.segment, invalid=409)


@router.get("/{send_id}")
def get_send(send_id: Id) -> dict[str, Any]:
    return call(actions.status, send_id)


@router.post("/{send_id}/{action}")
def post_action(
    send_id: Id,
    action: Annotated[
        str, Path(max_length=16, description="pause, resume, cancel, retry, approve or reject")
    ],
) -> dict[str, Any]:
    steer = STEER.get(action)
    if steer is None:
        raise HTTPException(
            404, f"no action {action!r}; use pause, resume, cancel, retry, approve or reject"
        )
    return call(steer, send_id, invalid=409)
