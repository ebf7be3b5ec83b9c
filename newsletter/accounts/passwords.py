"""Passwords hashed with argon2id (argon2-cffi's defaults, RFC 9106's second choice)."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from newsletter.errors import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 1000  # argon2 takes any length; a megabyte "password" is a denial of service


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidInput("password", f"the password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput("password", f"the password must be at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher().hash(password)


def verify(stored: str, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash of nothing anyone can type: verified against when the account does not exist,
# so a wrong address takes as long as a wrong password (no account enumeration by timing).
@lru_cache(maxsize=1)
def dummy_hash() -> str:
    return _hasher().hash("not a password: no account has it \x00")
