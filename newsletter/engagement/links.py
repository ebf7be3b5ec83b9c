"""Click tracking at compose time: a digest's links become signed redirects, once.

The composer calls `track` on a digest's HTML when its list has `track_clicks` on (off by
default: privacy first). Every `<a href="http(s)://…">` becomes
`{base_url}/c/%%NL_READER%%/{link code}`: the reader part is a per-reader marker the
sending fast path fills in (digests/fields.READER), the link part is constant per digest
(codes.LinkCodes), so tracking costs nothing per message beyond one MAC. The target is
stored in a DigestLink row and the redirect reads it from there (web/tracking.py), never
from the URL, so there is no open redirect.

Left alone: mailto: and other schemes, fragment-only links, the per-reader markers
(%%NL_…%%, e.g. the unsubscribe and preference URLs) and our own unsubscribe and
preference pages: a reader leaving must never depend on the tracker.

The HTML is parsed and written back with lxml (as premailer already does with the whole
mail), not edited with regular expressions.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

import lxml.html

from newsletter.engagement.codes import LinkCodes
from newsletter.models import DigestLink

READER = "%%NL_READER%%"
"""The per-reader marker of a reader code; the same string as digests/fields.READER."""

_OWN_PAGES = ("/unsubscribe/", "/preferences")


def _trackable(href: str, base_url: str) -> bool:
    href = href.strip()
    lowered = href.lower()
    if not (lowered.startswith("http://") or lowered.startswith("https://")):
        return False  # mailto:, tel:, relative and fragment-only links, markers
    if "%%NL_" in href:
        return False  # a per-reader link (unsubscribe, preferences) filled in at send
    base = base_url.rstrip("/")
    if base and lowered.startswith(base.lower() + "/"):
        path = href[len(base) :]
        if path.startswith(_OWN_PAGES) or path.startswith(("/c/", "/o/")):
            return False
    return True


def track(
    html: str,
    digest_id: int,
    base_url: str,
    secret: str,
    story_of: Callable[[str], int | None],
    *,
    numbering: dict[str, int] | None = None,
) -> tuple[str, list[DigestLink]]:
    """The HTML with its links rewritten to tracked redirects, and the DigestLink rows
    (not yet added to a session) that say where each number leads.

    The same URL twice in a digest gets one number, so clicks count per link and
    `story_of(url)` (the story whose URL it is, or None) attributes them to a story. A
    digest stored in several variants (carry, languages) passes one `numbering` dict
    (url -> number) to every call: numbers stay the same across variants, and each call
    returns only the rows for URLs not numbered before.
    """
    numbers = numbering if numbering is not None else {}
    codes = LinkCodes(secret)
    base = base_url.rstrip("/")
    new_rows: list[DigestLink] = []
    if "href" not in html.lower():
        return html, new_rows
    tree = lxml.html.document_fromstring(html)
    changed = False
    for anchor in tree.iter("a"):
        href = anchor.get("href")
        if href is None or not _trackable(href, base):
            continue
        url = href.strip()
        number = numbers.get(url)
        if number is None:
            number = max(numbers.values(), default=0) + 1
            numbers[url] = number
            new_rows.append(
                DigestLink(digest_id=digest_id, number=number, url=url, story_id=story_of(url))
            )
        anchor.set("href", f"{base}/c/{READER}/{codes(digest_id, number)}")
        changed = True
    if not changed:
        return html, new_rows
    doctype = tree.getroottree().docinfo.doctype
    out = lxml.html.tostring(tree, encoding="unicode", doctype=doctype or None)
    return out, new_rows


def pixel(base_url: str) -> str:
    """The open pixel, only for lists with `track_opens` explicitly on: a 1x1 image whose
    URL carries the per-reader marker. Empty alt so screen readers skip it."""
    base = escape(base_url.rstrip("/"), quote=True)
    return (
        f'<img src="{base}/o/{READER}.gif" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px" />'
    )
