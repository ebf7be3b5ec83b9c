"""Postmark bounce and spam-complaint webhooks.

Postmark does not sign its webhooks; it supports HTTP basic auth credentials in the
webhook URL, so the password (or a ``?secret=`` query parameter) must equal
NEWSLETTER_WEBHOOK_SECRET. Payload: one JSON object with RecordType ``Bounce`` or
``SpamComplaint`` and Postmark's bounce ``Type`` names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from newsletter.bounces.classify import classify, find_status
from newsletter.bounces.parse import BounceResult
from newsletter.bounces.webhooks import BadPayload, ProviderEvent, check_shared_secret
from newsletter.config import Settings
from newsletter.subscriptions.addresses import domain_of

_KINDS: dict[str, tuple[str, str]] = {
    "HardBounce": ("hard", "userunknown"),
    "BadEmailAddress": ("hard", "userunknown"),
    "SoftBounce": ("soft", "undefined"),
    "Transient": ("soft", "undefined"),
    "DnsError": ("soft", "networkerror"),
    "SpamComplaint": ("complaint", "feedback"),
    "SpamNotification": ("policy", "spamdetected"),
    "VirusNotification": ("policy", "virusdetected"),
    "Blocked": ("policy", "blocked"),
    "DMARCPolicy": ("policy", "authfailure"),
    "AutoResponder": ("ignore", "autoreply"),
}


def parse(
    body: bytes, headers: Mapping[str, str], query: Mapping[str, str], settings: Settings
) -> list[ProviderEvent]:
    check_shared_secret(settings.webhook_secret, headers, query)
    try:
        record = json.loads(body)
    except ValueError:
        raise BadPayload("body is not JSON") from None
    if not isinstance(record, dict) or record.get("RecordType") not in ("Bounce", "SpamComplaint"):
        raise BadPayload("not a Postmark Bounce or SpamComplaint record")
    email = str(record.get("Email") or "").lower()
    if "@" not in email:
        raise BadPayload("Postmark record without Email")
    mapped = _KINDS.get(str(record.get("Type")))
    if mapped is None:
        return []  # Subscribe, AddressChange, ManuallyDeactivated...: not a failure
    kind, reason = mapped
    details = str(record.get("Details") or record.get("Description") or "")
    status = find_status(details)
    if kind in ("soft", "hard") and details:
        found_kind, found_reason = classify(status, details)
        if found_kind == "policy":
            kind, reason = found_kind, found_reason
        elif found_kind == kind and found_reason != "undefined":
            reason = found_reason
    result = BounceResult(
        recipient=email,
        kind=kind,  # type: ignore[arg-type]
        reason=reason,
        status=status,
        diagnostic=details,
        remote_domain=domain_of(email),
        feedback_type="abuse" if kind == "complaint" else "",
    )
    return [ProviderEvent(result, "", f"postmark:{record.get('ID')}")]
