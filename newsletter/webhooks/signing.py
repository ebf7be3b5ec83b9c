"""Webhook signing: the secret is derived, never stored; each POST is signed.

An endpoint's secret is HMAC-SHA256(SECRET_KEY, "webhook:" + secret_nonce), shown to the
operator once when the endpoint is added and recomputed for every POST, so the
database (and a backup of it) holds nothing a forger could use.

The receiver checks `X-Newsletter-Signature: t=UNIX_TIME,v1=HEX` where HEX is
HMAC-SHA256 of `"{t}.{body}"` keyed with the secret (its UTF-8 bytes, `whsec_` included),
and should refuse a `t` more than a few minutes old (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_nonce() -> str:
    return secrets.token_hex(16)


def endpoint_secret(secret_key: str, nonce: str) -> str:
    mac = hmac.new(secret_key.encode(), f"webhook:{nonce}".encode(), hashlib.sha256)
    return PREFIX + mac.hexdigest()


def signature(secret: str, timestamp: int, body: str) -> str:
    """The header's value for this body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"
