"""Emit an event: one outbox row per active endpoint subscribed to its type.

`emit(session, type, data)` is called where the thing happens (consent, bounces, the
send's state machine), inside the caller's transaction, so an event exists if and only
if what it tells committed. Posting is someone else's job (deliver.py, a Celery task on
its own queue): the caller only writes rows, and with no endpoint at all it writes
nothing and costs one lookup that is cached for a few seconds per database.

The body is serialised once and stored as posted, the same bytes for every endpoint:

    {"type": "confirmed", "id": "evt_<32 hex>", "created": "2026-11-30T14:09:00Z",
     "data": {...}}

`created` is ISO 8601 in UTC with a `Z`, to the second; `id` is the same for every
endpoint that gets the event, so a receiver can deduplicate across retries.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import WebhookDelivery, WebhookEndpoint

EVENT_TYPES = (
    "subscribed",
    "confirmed",
    "unsubscribed",
    "bounced",
    "complained",
    "send.started",
    "send.finished",
)

# How long a process trusts its list of endpoints. An endpoint added or removed in
# another process is seen within this time; in this process at once (forget()).
CACHE_SECONDS = 3.0


@dataclass(frozen=True)
class _Target:
    id: int
    events: frozenset[str]


_cache: dict[str, tuple[float, tuple[_Target, ...]]] = {}
_lock = threading.Lock()


def _key(session: Session) -> str:
    bind = session.get_bind()
    return str(getattr(bind, "url", id(bind)))


def forget() -> None:
    """Drop the cached endpoint lists (an endpoint was added or removed here)."""
    with _lock:
        _cache.clear()


def _targets(session: Session) -> tuple[_Target, ...]:
    key = _key(session)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    rows = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.active.is_(True))
    ).all()
    found = tuple(_Target(r.id, frozenset(r.events or ())) for r in rows)
    with _lock:
        _cache[key] = (now, found)
    return found


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def body(event_type: str, event_id: str, created: datetime, data: Mapping[str, Any]) -> str:
    """The JSON posted, exactly (sorted keys, compact, ASCII)."""
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(
        {"type": event_type, "id": event_id, "created": stamp, "data": dict(data)},
        separators=(",", ":"),
        sort_keys=True,
        default=str,
    )


def wants(session: Session, type: str) -> bool:  # noqa: A002
    """Whether any active endpoint asked for `type` (cached): lets a caller skip building
    data that costs a query (a send's counts)."""
    return any(type in t.events for t in _targets(session))


def emit(session: Session, type: str, data: Mapping[str, Any]) -> None:  # noqa: A002
    """Write the event for every active endpoint that asked for `type`; flushes nothing.

    Raises ValueError for an unknown type (a programming error, not input)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    targets = [t for t in _targets(session) if type in t.events]
    if not targets:
        return
    now = datetime.now(UTC)
    event_id = new_event_id()
    payload = body(type, event_id, now, data)
    session.add_all(
        WebhookDelivery(
            endpoint_id=t.id,
            event_id=event_id,
            event_type=type,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for t in targets
    )
