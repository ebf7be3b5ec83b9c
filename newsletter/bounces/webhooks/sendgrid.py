"""SendGrid Event Webhook.

SendGrid signs with ECDSA (P-256, SHA-256) over ``timestamp + raw body``; the signature
(base64 DER) and timestamp come in the ``X-Twilio-Email-Event-Webhook-Signature`` and
``-Timestamp`` headers, the public key (base64 DER, from the SendGrid settings page) is
NEWSLETTER_SENDGRID_PUBLIC_KEY. The body is a JSON array of events; ``bounce`` (type
bounce or blocked), ``dropped`` for a bounced or complaining address and ``spamreport``
are failures; ``deferred`` is SendGrid still retrying and is left for the final event.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

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

SIGNATURE = "x-twilio-email-event-webhook-signature"
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"


def public_key(value: str) -> ec.EllipticCurvePublicKey:
    try:
        text = value.strip()
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text))
    except (ValueError, binascii.Error):
        raise NotConfigured("NEWSLETTER_SENDGRID_PUBLIC_KEY is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise NotConfigured("NEWSLETTER_SENDGRID_PUBLIC_KEY is not an ECDSA key")
    return key


def verify(body: bytes, headers: Mapping[str, str], key: ec.EllipticCurvePublicKey) -> None:
    signature, timestamp = headers.get(SIGNATURE, ""), headers.get(TIMESTAMP, "")
    if not signature or not timestamp:
        raise Unauthenticated("SendGrid signature headers missing")
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            timestamp.encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error):
        raise Unauthenticated("SendGrid signature does not match") from None


def parse(
    body: bytes, headers: Mapping[str, str], query: Mapping[str, str], settings: Settings
) -> list[ProviderEvent]:
    if not settings.sendgrid_public_key:
        raise NotConfigured("set NEWSLETTER_SENDGRID_PUBLIC_KEY to accept SendGrid events")
    verify(body, headers, public_key(settings.sendgrid_public_key))
    try:
        events = json.loads(body)
    except ValueError:
        raise BadPayload("body is not JSON") from None
    if not isinstance(events, list):
        raise BadPayload("SendGrid events must be a JSON array")
    out: list[ProviderEvent] = []
    for event in events:
        if isinstance(event, dict) and event.get("email"):
            result = _result(event)
            if result is not None:
                message_id = str(event.get("smtp-id") or "")
                out.append(ProviderEvent(result, message_id, str(event.get("sg_event_id") or "")))
    return out


def _result(event: Mapping[str, Any]) -> BounceResult | None:
    """SendGrid's event name (and bounce type) is its verdict; None: not a failure."""
    recipient = str(event["email"]).lower()
    name = event.get("event")
    text = str(event.get("reason") or event.get("response") or "")
    status = str(event.get("status") or find_status(text))
    message_id = str(event.get("smtp-id") or "")
    kind: Kind | None
    if name == "spamreport" or (name == "dropped" and "spam" in text.lower()):
        kind, reason, final = "complaint", "feedback", True
    elif name == "bounce" and event.get("type") == "blocked":
        kind, reason, final = "policy", "blocked", False  # never hard; may be temporary
    elif name == "bounce":
        # A bounce with a 4.x.x status is SendGrid giving up on a temporary failure: the
        # text decides. Otherwise SendGrid calls it final: hard unless the text says policy.
        kind, reason, final = (None if status.startswith("4") else "hard"), "userunknown", False
    elif name == "dropped" and "bounced address" in text.lower():
        kind, reason, final = "hard", "userunknown", True
    else:
        return None
    return verdict(recipient, kind, reason, status, text, final=final, message_id=message_id)
