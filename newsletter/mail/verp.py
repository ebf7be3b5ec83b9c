"""VERP envelope senders: `bounces+<delivery id>-<mac>@BOUNCE_DOMAIN`.

The token is the delivery id plus a truncated HMAC of it under SECRET_KEY, so a bounce
maps back to its delivery without a lookup table the sender could lose, and a forged or
altered address is refused. The MAC is lower-case hex because some mail systems fold
the case of local parts.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from newsletter.config import Settings

PREFIX = "bounces"
MAC_CHARS = 12  # 48 bits: forging one needs ~2**47 tries against a server that notices.
_TOKEN = re.compile(rf"^{PREFIX}\+(\d{{1,18}})-([0-9a-f]{{{MAC_CHARS}}})$")


def _mac(delivery_id: int, secret: str) -> str:
    msg = f"verp:{delivery_id}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:MAC_CHARS]


def verp_local_part(delivery_id: int, secret: str) -> str:
    return f"{PREFIX}+{delivery_id}-{_mac(delivery_id, secret)}"


def verp_address(delivery_id: int, settings: Settings) -> str:
    """The Return-Path for one delivery."""
    return f"{verp_local_part(delivery_id, settings.secret)}@{settings.bounces_domain}"


def decode_verp(address: str, settings: Settings) -> int | None:
    """The delivery id a bounce address stands for, or None if it is not one of ours."""
    address = address.strip().strip("<>").strip()
    local, sep, domain = address.rpartition("@")
    if not sep or domain.lower() != settings.bounces_domain.lower():
        return None
    found = _TOKEN.match(local.lower())
    if found is None:
        return None
    delivery_id = int(found.group(1))
    if not hmac.compare_digest(found.group(2), _mac(delivery_id, settings.secret)):
        return None
    return delivery_id
