"""Postmark bounce and spam-complaint webhooks.

Postmark does not sign its webhooks; it supports HTTP basic auth credentials in the
webhook URL, so the password (or a ``?secret=`` query parameter) must equal
NEWSLETTER_WEBHOOK_SECRET. Payload: one JSON object with RecordType ``Bounce`` or
``SpamComplaint`` and Postmark's bounce ``Type`` names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from newsletter.bounces.classify import Kind, find_status
from newsletter.bounces.verdict import verdict
from newsletter.bounces.webhooks import BadPayload, ProviderEvent, check_shared_secret
from newsletter.config import Settings

# Postmark's bounce Type -> its verdict. The generic hard and soft types are refined by
# the text (only within the same kind: Postmark already chose it); the others stand.
_KINDS: dict[str, tuple[Kind, str]] = {
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
    result = verdict(
        email,
        kind,
        reason,
        find_status(details),
        details,
        final=kind not in ("hard", "soft"),
        same_kind_only=True,
    )
    return [ProviderEvent(result, "", f"postmark:{record.get('ID')}")]
