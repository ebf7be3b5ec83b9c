"""Provider webhooks: each module checks a request the way that provider signs it and maps
its payload to plain fields (recipient, the provider's own verdict, status code, diagnostic
text, message id, event id); :func:`newsletter.bounces.verdict.verdict` turns those into a
BounceResult the same way for every provider, and :mod:`newsletter.web.webhooks` routes
them into the one handling path (:func:`newsletter.bounces.handling.record_bounce`).

Each provider module exposes ``parse(body, headers, query, settings) -> list[ProviderEvent]``
and raises one of the errors below; nothing is written before a request is authenticated.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.bounces.handling import find_subscriber, record_bounce
from newsletter.bounces.parse import BounceResult
from newsletter.config import Settings
from newsletter.models import Delivery


class WebhookError(Exception):
    """Refused input; ``status`` is the HTTP answer, ``reason`` the counted name."""

    status = 400
    reason = "bad-payload"


class NotConfigured(WebhookError):
    status = 404
    reason = "not-configured"


class Unauthenticated(WebhookError):
    status = 401
    reason = "bad-signature"


class Forbidden(WebhookError):
    status = 403
    reason = "not-allowed"


class BadPayload(WebhookError):
    status = 400
    reason = "bad-payload"


@dataclass(frozen=True)
class ProviderEvent:
    """One recipient's verdict from a provider, with what helps find our delivery."""

    result: BounceResult
    message_id: str = ""  # the Message-ID header of our message, when the provider has it
    ref: str = ""  # the provider's event id: deduplicates retried webhook calls


# A provider module's ``parse``: (body, lower-cased headers, query, settings) -> events.
Parser = Callable[[bytes, Mapping[str, str], Mapping[str, str], Settings], list[ProviderEvent]]


def check_shared_secret(
    expected: str | None, headers: Mapping[str, str], query: Mapping[str, str]
) -> None:
    """The fallback for providers that do not sign: HTTP basic auth password or ?secret=."""
    if not expected:
        raise NotConfigured("set NEWSLETTER_WEBHOOK_SECRET to accept this provider")
    given = query.get("secret", "")
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(value, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            given = ""
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated("missing or wrong webhook secret")


def find_delivery(session: Session, subscriber_id: int, message_id: str) -> int | None:
    """Our delivery for a provider event, by the Message-ID we sent (with or without <>)."""
    bare = message_id.strip().strip("<>")
    if not bare:
        return None
    return session.scalar(
        select(Delivery.id)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.message_id.in_([bare, f"<{bare}>"]),
        )
        .limit(1)
    )


def record_events(
    session: Session, settings: Settings, events: list[ProviderEvent], source: str
) -> dict[str, int]:
    """Route authenticated provider events into the one handling path.

    The provider vouches for the address (the request is authenticated), so the subscriber
    is found by address; the delivery, when the provider returns our Message-ID.
    """
    counts: dict[str, int] = {}
    for event in events:
        subscriber = find_subscriber(session, event.result.recipient)
        delivery_id = (
            find_delivery(session, subscriber.id, event.message_id)
            if subscriber is not None
            else None
        )
        handled = record_bounce(
            session,
            settings,
            event.result,
            delivery_id=delivery_id,
            source=source,
            match_address=True,
            ref=event.ref or event.message_id,
        )
        counts[handled.action] = counts.get(handled.action, 0) + 1
    return counts
