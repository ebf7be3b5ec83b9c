"""Operator actions on webhook endpoints: the CLI, the admin API and the console call
these (through workers.gateway.perform), so they cannot disagree."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.webhooks import endpoints


@audit.audited("webhooks.add", lambda url, *a, **k: f"webhook {url}"[:500])
def add_webhook(
    session: Session, settings: Settings, url: str, events: Any, description: Any = None
) -> Done[endpoints.Created]:
    """A new endpoint; its value carries the signing secret, for the face to show once."""
    return Done(endpoints.create(session, settings, url, events, description))


@audit.audited("webhooks.remove", lambda endpoint_id: f"webhook {endpoint_id}")
def remove_webhook(
    session: Session, settings: Settings, endpoint_id: int
) -> Done[dict[str, object]]:
    return Done(endpoints.remove(session, endpoint_id))


def list_webhooks(session: Session, settings: Settings) -> Done[list[dict[str, object]]]:
    return Done(endpoints.listing(session))


def get_webhook_log(
    session: Session, settings: Settings, endpoint_id: int, limit: int = 50
) -> Done[list[dict[str, object]]]:
    return Done(endpoints.log(session, endpoint_id, limit))
