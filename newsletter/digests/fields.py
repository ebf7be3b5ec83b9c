"""The per-reader fields of a stored digest: markers where a reader's own values go.

The composer renders and inlines a digest once, leaving these markers in both parts;
they are plain ASCII without '=' or spaces, so they survive MIME encoding of the
template. Filling them in has one implementation, the sending fast path
(newsletter/mail/fastpath.py, DigestTemplate): sending, the operator's preview
(digests/preview.py) and the test send (sending/testsend.py) all render through it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from html import escape

NAME = "%%NL_NAME%%"
EMAIL = "%%NL_EMAIL%%"
UNSUBSCRIBE_URL = "%%NL_UNSUBSCRIBE_URL%%"
ALL = (NAME, EMAIL, UNSUBSCRIBE_URL)


def personalise(digest_html: str, digest_text: str, values: Mapping[str, str]) -> tuple[str, str]:
    """Deprecated: use newsletter.digests.preview.preview_message, which renders the
    message a reader gets (DigestTemplate) and decodes its parts.

    Kept only until `newsletter digest preview` (commands/digest.py) switches over;
    then this goes. Values are keyed by NAME/EMAIL/UNSUBSCRIBE_URL and HTML-escaped in
    the HTML part.
    """
    warnings.warn(
        "fields.personalise is deprecated; use digests.preview.preview_message",
        DeprecationWarning,
        stacklevel=2,
    )
    html, text = digest_html, digest_text
    for marker in ALL:
        value = values.get(marker, "")
        html = html.replace(marker, escape(value, quote=True))
        text = text.replace(marker, value)
    return html, text
