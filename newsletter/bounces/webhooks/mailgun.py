"""Mailgun webhooks (the JSON "event-data" format).

Mailgun signs each call: ``signature.signature`` is HMAC-SHA256 over ``timestamp + token``
with the account's webhook signing key (NEWSLETTER_MAILGUN_SIGNING_KEY). A replayed call
carries the same event id, so it is deduplicated rather than refused by age (Mailgun
itself retries for hours).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from newsletter.bounces.classify import Kind, find_status
from newsletter.bounces.parse import BounceResult
from newsletter.bounces.verdict import verdict
from newsletter.bounces.webhooks import (
    BadPayload,
    NotConfigured,
    ProviderEvent,
    Unauthenticated,
)
from newsletter.config import Settings


def verify(signature: Mapping[str, Any], key: str) -> None:
    timestamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    given = str(signature.get("signature", ""))
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not (timestamp and token and hmac.compare_digest(given.encode(), expected.encode())):
        raise Unauthenticated("Mailgun signature does not match")


def parse(
    body: bytes, headers: Mapping[str, str], query: Mapping[str, str], settings: Settings
) -> list[ProviderEvent]:
    if not settings.mailgun_signing_key:
        raise NotConfigured("set NEWSLETTER_MAILGUN_SIGNING_KEY to accept Mailgun webhooks")
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadPayload("body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("signature"), dict):
        raise Unauthenticated("Mailgun signature missing")
    verify(payload["signature"], settings.mailgun_signing_key)
    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise BadPayload("Mailgun payload without event-data")
    event = data.get("event")
    recipient = str(data.get("recipient") or "").lower()
    if event not in ("failed", "complained") or not recipient:
        return []
    message_id = str(_object(_object(data, "message"), "headers").get("message-id") or "")
    ref = str(data.get("id") or "")
    if event == "complained":
        result = verdict(recipient, "complaint", "feedback", message_id=message_id)
    else:
        result = _failure(data, recipient, message_id)
    return [ProviderEvent(result, message_id, ref)]


def _object(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``data[key]`` when it is a JSON object, else an empty one."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _failure(data: Mapping[str, Any], recipient: str, message_id: str) -> BounceResult:
    """A "failed" event: Mailgun's severity is its verdict (permanent: hard, else soft)."""
    status_info = _object(data, "delivery-status")
    text = " ".join(
        str(status_info.get(k) or "") for k in ("code", "message", "description")
    ).strip()
    status = str(status_info.get("enhanced-code") or find_status(text))
    if data.get("reason") == "suppress-complaint":  # refused: the reader complained before
        return verdict(recipient, "complaint", "feedback", status, text, message_id=message_id)
    kind: Kind = "hard" if data.get("severity") == "permanent" else "soft"
    reason = "userunknown" if kind == "hard" else "undefined"
    return verdict(recipient, kind, reason, status, text, message_id=message_id)
