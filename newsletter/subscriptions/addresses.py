"""E-mail addresses and display names: validated, normalised, safe for headers."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import InvalidInput

MAX_NAME = 200
MAX_EMAIL = 254


def normalise_email(raw: str, *, check_deliverability: bool = False) -> str:
    """One canonical form per mailbox: NFC, lower-cased domain and local part.

    Lower-casing the local part is what every large mailbox provider does in practice
    and what readers expect ("Ana@x" and "ana@x" are one person); email-validator
    applies NFC and IDNA.
    """
    value = (raw or "").strip()
    if not value:
        raise InvalidInput("email", "Please enter your e-mail address.")
    if len(value) > MAX_EMAIL:
        raise InvalidInput("email", "That e-mail address is too long.")
    try:
        result = validate_email(value, check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise InvalidInput("email", f"That is not a valid e-mail address: {exc}") from None
    local, _, domain = result.normalized.rpartition("@")
    return f"{unicodedata.normalize('NFC', local).lower()}@{domain.lower()}"


def clean_name(raw: str | None) -> str:
    """A display name without anything that could break a header or a page layout."""
    value = unicodedata.normalize("NFC", (raw or "").strip())
    if len(value) > MAX_NAME:
        raise InvalidInput("name", f"Please keep the name under {MAX_NAME} characters.")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise InvalidInput("name", "The name contains line breaks or control characters.")
    return value


def domain_of(address: str | None) -> str:
    """The lower-cased domain of an address ("" for none)."""
    return (address or "").rpartition("@")[2].lower()


def email_hash(email: str, secret: str) -> str:
    """Keyed hash for the suppression list: matches the address, cannot be read back."""
    return hmac.new(secret.encode(), email.encode(), hashlib.sha256).hexdigest()
