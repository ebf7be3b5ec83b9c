"""Admin API for outgoing webhooks (/api/webhooks): not web/webhooks.py, which takes the
providers' inbound bounce webhooks.

Every route, reading included, needs the subscribers capability (admin): an endpoint's
deliveries carry readers' addresses. The secret is in the POST's answer only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from newsletter.accounts.roles import Capability, can
from newsletter.web.api import Id, call
from newsletter.web.auth import require_admin
from newsletter.webhooks import actions


def require_webhook_admin(request: Request) -> None:
    actor = getattr(request.state, "actor", None)
    if actor is None or not can(actor.role, Capability.subscribers):
        role = actor.role if actor is not None else "none"
        raise HTTPException(403, f"Your role ({role}) may not do this; it needs subscribers.")


router = APIRouter(
    prefix="/api/webhooks",
    dependencies=[Depends(require_admin), Depends(require_webhook_admin)],
    tags=["webhooks"],
)


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000)
    events: list[str] | str = Field(
        description="Event types: subscribed, confirmed, unsubscribed, bounced, complained, "
        "send.started, send.finished (a list or a comma-separated string)"
    )
    description: str | None = Field(None, max_length=200)


@router.get("")
def get_webhooks() -> list[dict[str, Any]]:
    """The endpoints with their delivery counts and last status."""
    return call(actions.list_webhooks)


@router.post("", status_code=201)
def post_webhook(body: WebhookIn) -> dict[str, Any]:
    """Register an endpoint; the answer's `secret` is shown only here, never again."""
    created = call(actions.add_webhook, body.url, body.events, body.description, invalid=400)
    return {**created.record, "secret": created.secret}


@router.delete("/{endpoint_id}")
def delete_webhook(endpoint_id: Id) -> dict[str, Any]:
    return call(actions.remove_webhook, endpoint_id)


@router.get("/{endpoint_id}/deliveries")
def get_deliveries(endpoint_id: Id, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent deliveries, newest first (`limit` 1-500)."""
    if not 1 <= limit <= 500:
        raise HTTPException(400, [{"field": "limit", "message": "limit: 1 to 500"}])
    return call(actions.get_webhook_log, endpoint_id, limit)
