"""Per-recipient fields of a stored digest.

The composer renders and inlines a digest once, leaving these markers where a reader's
own values go; sending one message is then a substitution, never a render. The markers
are plain ASCII without '=' or spaces, so they survive MIME encoding of the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

NAME = "%%NL_NAME%%"
EMAIL = "%%NL_EMAIL%%"
UNSUBSCRIBE_URL = "%%NL_UNSUBSCRIBE_URL%%"
ALL = (NAME, EMAIL, UNSUBSCRIBE_URL)


def fill(template: str, values: Mapping[str, str], *, html: bool) -> str:
    """The reference substitution: values keyed by marker, HTML-escaped in the HTML part."""
    out = template
    for marker in ALL:
        value = values.get(marker, "")
        out = out.replace(marker, escape(value, quote=True) if html else value)
    return out
