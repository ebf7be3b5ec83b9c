"""Per-recipient fields of a stored digest.

The composer renders and inlines a digest once, leaving these markers where a reader's
own values go; sending one message is then a substitution, never a render. The markers
are plain ASCII without '=' or spaces, so they survive MIME encoding of the template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from html import escape

from newsletter.digests import fields as placeholders

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


_MARKER = re.compile("(" + "|".join(re.escape(m) for m in placeholders.ALL) + ")")


@lru_cache(maxsize=16)
def _split(template: str) -> tuple[str, ...]:
    """Literal text and markers, alternating (markers at odd positions), split once."""
    return tuple(_MARKER.split(template))


def _join(parts: tuple[str, ...], values: Mapping[str, str]) -> str:
    chunks = list(parts)
    for i in range(1, len(chunks), 2):
        chunks[i] = values.get(chunks[i], "")
    return "".join(chunks)


def personalise(digest_html: str, digest_text: str, values: Mapping[str, str]) -> tuple[str, str]:
    """Both parts for one reader: values keyed by placeholders.NAME/EMAIL/UNSUBSCRIBE_URL.

    Same result as placeholders.fill, but each template is split at its markers once and
    cached, so one reader costs a join of both parts, not a scan of each per marker.
    """
    escaped = {k: escape(v, quote=True) for k, v in values.items()}
    return _join(_split(digest_html), escaped), _join(_split(digest_text), values)
