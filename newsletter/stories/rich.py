"""Rich story bodies: a small, safe HTML subset stored beside a faithful plain text.

Every body that reaches a page or a mail as HTML has gone through `sanitise` (nh3, the
Rust ammonia sanitiser): only the tags and attributes below survive, links only with
http, https or mailto, and every link opens as an ordinary link (no script, no event
handler, no style, no javascript: or data: URL, no CSS expression).
"""

from __future__ import annotations

import nh3

TAGS = frozenset(
    {
        "p", "br", "strong", "b", "em", "i", "u", "s", "sub", "sup", "a", "ul", "ol", "li",
        "blockquote", "h3", "h4", "img", "figure", "figcaption", "code", "pre", "hr",
    }
)  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


def sanitise(html: str) -> str:
    """The allowed subset of `html`; everything else is dropped (script and style with
    their content), text is kept and escaped."""
    return nh3.clean(
        html,
        tags=set(TAGS),
        attributes={k: set(v) for k, v in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
