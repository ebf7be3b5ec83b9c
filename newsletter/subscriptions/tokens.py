"""Signed tokens for confirm and unsubscribe links: no table to lose, nothing to guess."""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer


class TokenInvalid(Exception):
    """Tampered, truncated or from another secret."""


class TokenExpired(Exception):
    """Genuine but too old; carries the payload so the page can offer a new mail."""

    def __init__(self, payload: object) -> None:
        super().__init__("expired")
        self.payload = payload


@dataclass(frozen=True)
class ConfirmClaim:
    subscription_id: int
    nonce: int


def make_confirm_token(secret: str, subscription_id: int, nonce: int) -> str:
    return URLSafeTimedSerializer(secret, salt="confirm").dumps([subscription_id, nonce])


def read_confirm_token(secret: str, token: str, max_age_seconds: int) -> ConfirmClaim:
    s = URLSafeTimedSerializer(secret, salt="confirm")
    try:
        sid, nonce = s.loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        # The signature is genuine (checked without the age limit), only old.
        sid, nonce = s.loads(token)
        raise TokenExpired(ConfirmClaim(int(sid), int(nonce))) from None
    except (BadSignature, ValueError, TypeError):
        raise TokenInvalid() from None
    return ConfirmClaim(int(sid), int(nonce))


def make_unsubscribe_token(secret: str, subscription_id: int) -> str:
    return URLSafeSerializer(secret, salt="unsubscribe").dumps(subscription_id)


def read_unsubscribe_token(secret: str, token: str) -> int:
    try:
        value = URLSafeSerializer(secret, salt="unsubscribe").loads(token)
    except (BadSignature, ValueError, TypeError):
        raise TokenInvalid() from None
    if not isinstance(value, int):
        raise TokenInvalid()
    return value
