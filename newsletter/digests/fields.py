"""The per-reader fields of a stored digest: markers where a reader's own values go.

The composer renders and inlines a digest once, leaving these markers in both parts;
they are plain ASCII without '=' or spaces, so they survive MIME encoding of the
template. Filling them in has one implementation, the sending fast path
(newsletter/mail/fastpath.py, DigestTemplate): sending, the operator's preview
(digests/preview.py) and the test send (sending/testsend.py) all render through it.

Attributes (Subscriber.attributes) are markers too, one per name a template reads
(`{{ reader.attributes.city }}`, or with a fallback for readers without it,
`{{ reader.attr("city", "your city") }}` or `{{ reader.attributes.city | default("your
city") }}`): `%%NL_ATTR_city%%`, and with a fallback `%%NL_ATTR_city.<fallback as
unpadded urlsafe base64>%%`, so the fallback travels with the stored digest and the fast
path needs nothing but the marker. A digest without an attribute marker makes the sender
read no attributes at all (sending/batch.py).
"""

from __future__ import annotations

import re
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterable

NAME = "%%NL_NAME%%"
EMAIL = "%%NL_EMAIL%%"
UNSUBSCRIBE_URL = "%%NL_UNSUBSCRIBE_URL%%"
# {BASE_URL}/preferences/{PreferencesSigner(secret)(subscription id)}: the preference centre.
PREFERENCES_URL = "%%NL_PREFERENCES_URL%%"
# ReaderCodes(secret)(delivery id): the reader part of a tracked link (engagement/links.py).
READER = "%%NL_READER%%"
ALL = (NAME, EMAIL, UNSUBSCRIBE_URL, PREFERENCES_URL, READER)

ATTRIBUTE_PREFIX = "%%NL_ATTR_"
MAX_FALLBACK_CHARS = 200
ATTRIBUTE = re.compile(r"%%NL_ATTR_([a-z][a-z0-9_]{0,39})(?:\.([A-Za-z0-9_-]*))?%%")
"""An attribute marker: group 1 the attribute's name, group 2 the encoded fallback."""
ANY = re.compile("|".join(re.escape(m) for m in ALL) + "|" + ATTRIBUTE.pattern)
"""Every marker, fixed and attribute ones (their names' order: the fixed ones first)."""


def attribute(name: str, fallback: str = "") -> str:
    """The marker of attribute `name` (a checked attribute name), shown as `fallback`
    to a reader who has no value for it."""
    fallback = " ".join(str(fallback).split())[:MAX_FALLBACK_CHARS]
    if not fallback:
        return f"{ATTRIBUTE_PREFIX}{name}%%"
    encoded = urlsafe_b64encode(fallback.encode()).rstrip(b"=").decode()
    return f"{ATTRIBUTE_PREFIX}{name}.{encoded}%%"


def parse_attribute(marker: str) -> tuple[str, str]:
    """(name, fallback) of an attribute marker."""
    found = ATTRIBUTE.fullmatch(marker)
    if found is None:
        raise ValueError(f"not an attribute marker: {marker!r}")
    encoded = found.group(2) or ""
    fallback = urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode() if encoded else ""
    return found.group(1), fallback


def uses_attributes(*parts: str) -> bool:
    """Does any part hold an attribute marker? (The sender then reads attributes.)"""
    return any(ATTRIBUTE_PREFIX in part for part in parts)


def attribute_names(parts: Iterable[str]) -> list[str]:
    """The attribute names the parts read, in order of first use."""
    seen: dict[str, None] = {}
    for part in parts:
        for found in ATTRIBUTE.finditer(part):
            seen.setdefault(found.group(1), None)
    return list(seen)


def attribute_text(value: object, fallback: str) -> str:
    """What a reader sees for an attribute value (None or "" shows the fallback)."""
    if value is None or value == "":
        return fallback
    if isinstance(value, bool):
        return "true" if value else "false"  # as written in JSON, the CSV and the API
    return str(value)
