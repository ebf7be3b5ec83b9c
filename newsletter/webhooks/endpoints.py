"""The operator's webhook endpoints: checked on the way in, listed with their record.

A URL must be http(s) with a host; in production (or FETCH_PRIVATE_NETWORKS=false) a
host on this machine or a private network is refused here and again at every POST
(netnames.public_only), like the service's own fetches, so a webhook cannot be aimed at
an internal service. Removing an endpoint deactivates it: its delivery log stays, and an
event written by another process that still had it cached lands on a row that exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import InvalidInput, NotFound
from newsletter.models import WebhookDelivery, WebhookEndpoint
from newsletter.netnames import never_resolves, private_address
from newsletter.webhooks import events, signing

MAX_DESCRIPTION = 200


def check_url(settings: Settings, url: str) -> str:
    url = (url or "").strip()
    if not url or len(url) > 2000 or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidInput("url", "webhook URL: give an http(s) URL of at most 2000 characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise InvalidInput("url", f"webhook URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidInput(
            "url", "webhook URL: must start with http:// or https:// and name a host"
        )
    if parts.username or parts.password:
        raise InvalidInput("url", "webhook URL: no user or password in the URL")
    if never_resolves(host):
        raise InvalidInput(
            "url", f"webhook URL: {host} is a documentation name that exists nowhere"
        )
    if not settings.may_fetch_private:
        found = private_address(host)
        if found is not None:
            raise InvalidInput("url", f"webhook URL: {host} is a private address ({found})")
    return url


def check_events(raw: Any) -> list[str]:
    """A list (or a comma-separated string) of known event types, at least one."""
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list | tuple) or not raw or not all(isinstance(e, str) for e in raw):
        raise InvalidInput("events", f"events: give one or more of {', '.join(events.EVENT_TYPES)}")
    unknown = [e for e in raw if e not in events.EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            "events", f"unknown event {unknown[0]!r}; known: {', '.join(events.EVENT_TYPES)}"
        )
    return [e for e in events.EVENT_TYPES if e in raw]


def check_description(raw: Any) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str) or len(raw) > MAX_DESCRIPTION:
        raise InvalidInput(
            "description", f"description: text of at most {MAX_DESCRIPTION} characters"
        )
    if any(ord(c) < 32 for c in raw):
        raise InvalidInput("description", "description: one line of text")
    return raw.strip()


@dataclass(frozen=True)
class Created:
    record: dict[str, object]
    secret: str  # shown once, never stored


def create(
    session: Session, settings: Settings, url: str, event_types: Any, description: Any = None
) -> Created:
    endpoint = WebhookEndpoint(
        url=check_url(settings, url),
        events=check_events(event_types),
        description=check_description(description),
        secret_nonce=signing.new_nonce(),
        active=True,
    )
    session.add(endpoint)
    session.flush()
    events.forget()
    secret = signing.endpoint_secret(settings.secret, endpoint.secret_nonce)
    return Created(record(endpoint, {}), secret)


def find(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or not endpoint.active:
        raise NotFound("webhook", f"no webhook {endpoint_id}")
    return endpoint


def remove(session: Session, endpoint_id: int) -> dict[str, object]:
    endpoint = find(session, endpoint_id)
    endpoint.active = False
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == "pending",
        )
        .values(status="failed", last_error="endpoint removed", next_attempt_at=None)
    )
    events.forget()
    return {"id": endpoint_id, "url": endpoint.url, "removed": True}


def _counts(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = session.execute(
        select(
            WebhookDelivery.endpoint_id,
            func.count().label("total"),
            func.sum(case((WebhookDelivery.status == "delivered", 1), else_=0)).label("delivered"),
            func.sum(case((WebhookDelivery.status == "pending", 1), else_=0)).label("pending"),
            func.sum(case((WebhookDelivery.status == "failed", 1), else_=0)).label("failed"),
            func.max(WebhookDelivery.id).label("last_id"),
        )
        .where(WebhookDelivery.endpoint_id.in_(ids))
        .group_by(WebhookDelivery.endpoint_id)
    ).all()
    found: dict[int, dict[str, Any]] = {}
    last_ids = [r.last_id for r in rows]
    last = {
        d.endpoint_id: d
        for d in session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(last_ids)))
    }
    for r in rows:
        latest = last.get(r.endpoint_id)
        found[r.endpoint_id] = {
            "deliveries": int(r.total),
            "delivered": int(r.delivered or 0),
            "pending": int(r.pending or 0),
            "failed": int(r.failed or 0),
            "last_status": latest.status if latest else None,
            "last_code": latest.last_code if latest else None,
        }
    return found


def record(endpoint: WebhookEndpoint, counts: dict[str, Any]) -> dict[str, object]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events or ()),
        "description": endpoint.description,
        "created_at": _iso(endpoint.created_at),
        "deliveries": counts.get("deliveries", 0),
        "delivered": counts.get("delivered", 0),
        "pending": counts.get("pending", 0),
        "failed": counts.get("failed", 0),
        "last_status": counts.get("last_status"),
        "last_code": counts.get("last_code"),
    }


def listing(session: Session) -> list[dict[str, object]]:
    endpoints = list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.active.is_(True))
            .order_by(WebhookEndpoint.id)
        )
    )
    counts = _counts(session, [e.id for e in endpoints])
    return [record(e, counts.get(e.id, {})) for e in endpoints]


def delivery_record(d: WebhookDelivery) -> dict[str, object]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "last_code": d.last_code,
        "last_error": d.last_error,
        "created_at": _iso(d.created_at),
        "next_attempt_at": _iso(d.next_attempt_at),
        "delivered_at": _iso(d.delivered_at),
    }


def log(session: Session, endpoint_id: int, limit: int = 50) -> list[dict[str, object]]:
    """The endpoint's most recent deliveries, newest first."""
    find(session, endpoint_id)
    rows = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    return [delivery_record(d) for d in rows]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
