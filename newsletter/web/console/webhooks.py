"""/console/webhooks: outgoing webhooks (newsletter/webhooks/), for admins.

Admins only (the subscribers capability): the deliveries carry readers' addresses. The
signing secret is in the answer to the POST that made the endpoint and never again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.accounts.roles import Capability
from newsletter.accounts.sessions import Current
from newsletter.web.api import Id
from newsletter.web.console.core import ActionFailed, act, redirect, render, requires
from newsletter.webhooks import actions
from newsletter.webhooks.events import EVENT_TYPES

router = APIRouter()
Admin = Annotated[Current, requires(Capability.subscribers)]
Text = Annotated[str, Form()]


def _list(
    request: Request,
    status: int = 200,
    error: str = "",
    url: str = "",
    chosen: list[str] | None = None,
    description: str = "",
) -> HTMLResponse:
    return render(
        request,
        "webhooks.html",
        status=status,
        webhooks=act(actions.list_webhooks),
        event_types=EVENT_TYPES,
        error=error,
        url=url,
        chosen=chosen if chosen is not None else list(EVENT_TYPES),
        description=description,
    )


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, current: Admin) -> HTMLResponse:
    return _list(request)


@router.post("/webhooks", response_class=HTMLResponse)
def add(
    request: Request,
    current: Admin,
    url: Text = "",
    description: Text = "",
    events: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    url, description = url.strip()[:2000], description.strip()[:200]
    chosen = [e for e in (events or []) if e in EVENT_TYPES]
    try:
        created = act(actions.add_webhook, url, list(events or []), description)
    except ActionFailed as exc:
        return _list(request, exc.status, exc.message, url, chosen, description)
    return render(
        request, "webhook_secret.html", status=201, made=created.record, secret=created.secret
    )


@router.get("/webhooks/{endpoint_id}", response_class=HTMLResponse)
def deliveries(request: Request, current: Admin, endpoint_id: Id) -> HTMLResponse:
    found = [w for w in act(actions.list_webhooks) if w["id"] == endpoint_id]
    if not found:
        raise ActionFailed(404, f"no webhook {endpoint_id}")
    rows = act(actions.get_webhook_log, endpoint_id, 100)
    return render(request, "webhook.html", webhook=found[0], deliveries=rows)


@router.post("/webhooks/{endpoint_id}/remove")
def remove(request: Request, current: Admin, endpoint_id: Id) -> Response:
    removed = act(actions.remove_webhook, endpoint_id)
    target: RedirectResponse = redirect(
        "/console/webhooks", f"Removed the webhook to {removed['url']}."
    )
    return target
