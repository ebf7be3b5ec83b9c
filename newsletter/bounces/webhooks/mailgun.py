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

from newsletter.bounces.classify import HARD_REASONS, classify, find_status
from newsletter.bounces.parse import BounceResult
from newsletter.bounces.webhooks import (
    BadPayload,
    NotConfigured,
    ProviderEvent,
    Unauthenticated,
)
from newsletter.config import Settings
from newsletter.subscriptions.addresses import domain_of


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
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    msg_headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    message_id = str(msg_headers.get("message-id") or "")
    ref = str(data.get("id") or "")
    if event == "complained":
        result = BounceResult(
            recipient=recipient,
            kind="complaint",
            reason="feedback",
            feedback_type="abuse",
            remote_domain=domain_of(recipient),
            original_message_id=message_id,
        )
        return [ProviderEvent(result, message_id, ref)]
    return [ProviderEvent(_failure(data, recipient), message_id, ref)]


def _failure(data: Mapping[str, Any], recipient: str) -> BounceResult:
    status_obj = data.get("delivery-status")
    status_info: Mapping[str, Any] = status_obj if isinstance(status_obj, dict) else {}
    text = " ".join(
        str(status_info.get(k) or "") for k in ("code", "message", "description")
    ).strip()
    status = str(status_info.get("enhanced-code") or find_status(text))
    kind, reason = classify(status, text)
    permanent = data.get("severity") == "permanent"
    if data.get("reason") == "suppress-complaint":
        kind, reason = "complaint", "feedback"
    elif permanent and kind not in ("policy",):
        kind = "hard"
        reason = reason if reason in HARD_REASONS else "userunknown"
    elif not permanent and kind == "hard":
        kind = "soft"
    return BounceResult(
        recipient=recipient,
        kind=kind,
        reason=reason,
        status=status,
        diagnostic=text,
        remote_domain=domain_of(recipient),
    )
