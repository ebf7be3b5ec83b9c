"""Bearer-token check for the admin API."""

from __future__ import annotations

import hmac

from fastapi import Header, HTTPException

from newsletter.config import get_settings


def require_admin(authorization: str | None = Header(default=None)) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    expected = get_settings().admin
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(401, "A valid admin token is required.", {"WWW-Authenticate": "Bearer"})
