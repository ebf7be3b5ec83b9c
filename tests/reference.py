"""The reference filling of reader fields: a plain substitution, checked against nothing.

The package fills fields one way only (mail/fastpath.py, DigestTemplate); tests compare
what it produces with this, applied to the digest as stored, and with the standard
library's builder (newsletter/mail/message.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from newsletter.digests import fields


def fill(
    template: str,
    values: Mapping[str, str],
    *,
    html: bool,
    attributes: Mapping[str, object] | None = None,
) -> str:
    """Values keyed by marker, HTML-escaped in the HTML part; a missing value is empty.
    Attribute markers take the reader's `attributes` (their fallback when absent)."""
    out = template
    for marker in fields.ALL:
        value = values.get(marker, "")
        out = out.replace(marker, escape(value, quote=True) if html else value)

    def attribute(found: object) -> str:
        marker = found.group(0)  # type: ignore[attr-defined]
        name, fallback = fields.parse_attribute(marker)
        value = (attributes or {}).get(name)
        if value is None or value == "":
            shown = fallback
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        else:
            shown = str(value)
        return escape(shown, quote=True) if html else shown

    return fields.ATTRIBUTE.sub(attribute, out)
