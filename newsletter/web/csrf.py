"""Double-submit CSRF token for the subscribe form: a signed random value in a cookie and a field.

The RFC 8058 one-click unsubscribe POST and the JSON variant of /subscribe need none:
the first carries its own signed token in the URL, the second cannot be sent cross-site
without a CORS preflight that this app never grants.
"""

from __future__ import annotations

import hmac
import secrets

from itsdangerous import BadSignature, Signer

COOKIE = "nl_csrf"


def new_token(secret: str) -> str:
    return Signer(secret, salt="csrf").sign(secrets.token_urlsafe(16)).decode()


def valid(secret: str, cookie: str | None, field: str | None) -> bool:
    if not cookie or not field or not hmac.compare_digest(cookie, field):
        return False
    try:
        Signer(secret, salt="csrf").unsign(cookie)
    except BadSignature:
        return False
    return True
