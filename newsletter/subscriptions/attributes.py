"""Subscriber attributes: what the newsroom knows of a reader beyond the address.

A flat JSON object: names are short identifiers (they appear in templates as
`{{ reader.attributes.city }}` and in segments as `attributes.city`), values are
strings, numbers, booleans or null, and the whole object is size-limited, so one reader
cannot bloat every row the send reads. Every way in (the form's extra fields, CSV
columns, the API, the console) goes through `clean`, so all agree on what is allowed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from newsletter.errors import InvalidInput

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")
MAX_KEYS = 50
MAX_VALUE_CHARS = 500
MAX_BYTES = 4096  # the whole object as compact JSON
# Names that mean something else already: the reader's own columns.
RESERVED = frozenset({"email", "name", "status", "language", "timezone", "list"})

Scalar = str | int | float | bool | None


def check_name(name: str, field: str = "attributes") -> str:
    if not NAME.match(name) or name in RESERVED:
        raise InvalidInput(
            field,
            f"{name!r} is not an attribute name: lower-case letters, digits and _, "
            "starting with a letter, at most 40 characters"
            + (f" (and not one of {', '.join(sorted(RESERVED))})" if name in RESERVED else "")
            + ".",
        )
    return name


def _value(name: str, value: Any, field: str) -> Scalar:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(field, f"attribute {name!r} must be a finite number.")
        return value
    if isinstance(value, str):
        text = " ".join(value.replace("\x00", "").split())
        if len(text) > MAX_VALUE_CHARS:
            raise InvalidInput(
                field, f"attribute {name!r} is longer than {MAX_VALUE_CHARS} characters."
            )
        return text
    raise InvalidInput(
        field,
        f"attribute {name!r} must be text, a number, true/false or null, not a list or object.",
    )


def clean(raw: Any, field: str = "attributes") -> dict[str, Scalar]:
    """The attributes as stored, or InvalidInput saying what is wrong (nothing written)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInput(field, "attributes must be a JSON object of name: value.")
    if len(raw) > MAX_KEYS:
        raise InvalidInput(field, f"at most {MAX_KEYS} attributes per reader.")
    out: dict[str, Scalar] = {}
    for name, value in raw.items():
        if not isinstance(name, str):
            raise InvalidInput(field, "attribute names are text.")
        out[check_name(name, field)] = _value(name, value, field)
    if len(json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()) > MAX_BYTES:
        raise InvalidInput(field, f"attributes take at most {MAX_BYTES} bytes as JSON.")
    return out


def merge(current: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Scalar]:
    """`current` updated with `changes` (a null value removes the attribute), checked."""
    cleaned = clean(changes)
    merged = dict(current or {})
    for name, value in cleaned.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return clean(merged)
