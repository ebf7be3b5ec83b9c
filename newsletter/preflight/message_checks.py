"""Checks of the message a reader gets, read back from its own bytes (digests/preview.py).

The preview is rendered for the sample reader (subscription 0, which exists nowhere), so
its unsubscribe URL is a genuine, verifiable link that unsubscribes no one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

from newsletter.config import Settings
from newsletter.digests.preview import Preview, parse_message
from newsletter.digests.render import GMAIL_CLIP
from newsletter.preflight.findings import Finding, passed, problem
from newsletter.subscriptions.tokens import TokenInvalid, read_unsubscribe_token

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr"}
)  # fmt: skip
_HIDING = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|opacity\s*:\s*0(?:\.0*)?\s*(?:;|$)"
    r"|font-size\s*:\s*0(?:px|pt|em|rem|%)?\s*(?:;|$)|max-height\s*:\s*0(?:px)?\s*(?:;|$)",
    re.I,
)
_TEXT_URL = re.compile(r"(?:https?://|mailto:)[^\s<>\"')\]]*", re.I)


@dataclass
class _Link:
    tag: str
    url: str
    hidden: bool
    text: list[str] = field(default_factory=list)


class _Links(HTMLParser):
    """Every <a href>, <area href> and <img src>, with whether an ancestor hides it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, hides itself)
        self.links: list[_Link] = []
        self.open: list[_Link] = []

    def _hidden(self) -> bool:
        return any(h for _, h in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        hides = "hidden" in a or bool(_HIDING.search(a.get("style", "")))
        hides = hides or a.get("aria-hidden", "").lower() == "true" and tag == "a"
        hidden = self._hidden() or hides
        if tag in ("a", "area") and "href" in a:
            link = _Link(tag, a["href"], hidden)
            self.links.append(link)
            if tag == "a":
                self.open.append(link)
        elif tag == "img":
            self.links.append(_Link(tag, a.get("src", ""), hidden))
        if tag not in VOID:
            self.stack.append((tag, hides))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.open:
            self.open.pop()
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if self.open and not self._hidden():
            self.open[-1].text.append(data)


def html_links(html: str) -> list[_Link]:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.links


def unsubscribe_url(preview: Preview) -> str | None:
    """The https (or http) URL of the List-Unsubscribe header."""
    header = str(parse_message(preview.raw).get("List-Unsubscribe", ""))
    for url in re.findall(r"<([^>]*)>", header):
        if url.lower().startswith(("https://", "http://")):
            return str(url)
    return None


def list_unsubscribe(preview: Preview, settings: Settings, *, production: bool) -> Finding:
    """RFC 8058 headers: an HTTPS URL under BASE_URL whose token verifies, a mailto, and
    List-Unsubscribe-Post: List-Unsubscribe=One-Click."""
    message = parse_message(preview.raw)
    header = " ".join(str(message.get("List-Unsubscribe", "")).split())
    post = " ".join(str(message.get("List-Unsubscribe-Post", "")).split())
    urls = re.findall(r"<([^>]*)>", header)
    web = [u for u in urls if u.lower().startswith(("https://", "http://"))]
    mailto = [u for u in urls if u.lower().startswith("mailto:")]
    blocking: list[str] = []
    warning: list[str] = []
    prefix = f"{settings.base_url}/unsubscribe/"
    if not header:
        blocking.append("the message has no List-Unsubscribe header")
    if not web:
        blocking.append("List-Unsubscribe has no https:// URL")
    for url in web[:1]:
        if not url.startswith(prefix):
            blocking.append(f"its URL {url} is not under NEWSLETTER_BASE_URL ({prefix}…)")
        else:
            token = url[len(prefix) :]
            try:
                claim = read_unsubscribe_token(settings.secret, token)
                ok = claim == preview.reader.subscription_id
            except TokenInvalid:
                ok = False
            if not ok:
                blocking.append(f"the token of {url} does not verify with NEWSLETTER_SECRET_KEY")
        if not url.lower().startswith("https://"):
            msg = (
                f"its URL {url} is not https: mailbox providers offer one-click unsubscribe "
                "only over https; set NEWSLETTER_BASE_URL to the https address of the web app"
            )
            (blocking if production else warning).append(msg)
    if not mailto:
        blocking.append("List-Unsubscribe has no mailto: address")
    elif f"@{settings.bounces_domain}" not in mailto[0]:
        blocking.append(
            f"its mailto {mailto[0]} is not at the bounce domain {settings.bounces_domain}"
        )
    if post != "List-Unsubscribe=One-Click":
        blocking.append(
            f"List-Unsubscribe-Post is {post or 'missing'!r}, not List-Unsubscribe=One-Click"
        )
    if blocking or warning:
        return problem("list-unsubscribe", "; ".join(blocking + warning), blocking=bool(blocking))
    return passed("list-unsubscribe", f"<{web[0]}>, <{mailto[0]}>; One-Click")


def visible_unsubscribe(preview: Preview) -> Finding:
    """A reader must see the way out: a link in the HTML (not hidden) and in the text."""
    url = unsubscribe_url(preview)
    if url is None:
        return problem(
            "unsubscribe-link", "no unsubscribe URL to look for (List-Unsubscribe)", blocking=True
        )
    links = [
        link for link in html_links(preview.html)
        if link.tag in ("a", "area") and (link.url == url or url in "".join(link.text))
    ]  # fmt: skip
    shown = [link for link in links if not link.hidden and "".join(link.text).strip()]
    missing = []
    if not shown:
        why = "is hidden or has no text" if links else "is missing"
        missing.append(
            f"the HTML part's unsubscribe link {why}: the digest template needs a visible "
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a> (not inside display:none, '
            "visibility:hidden, font-size:0 …)"
        )
    if url not in preview.text:
        missing.append(
            "the text part does not show the unsubscribe URL: add {{ unsubscribe_url }} to "
            "the template's body.txt"
        )
    if missing:
        return problem("unsubscribe-link", "; ".join(missing), blocking=True)
    return passed("unsubscribe-link", "shown in the HTML and the text part")


def size(preview: Preview) -> Finding:
    n = preview.html_bytes
    if n > GMAIL_CLIP:
        return problem(
            "size",
            f"the HTML is {n:,} bytes, over Gmail's clip at {GMAIL_CLIP:,}: Gmail hides the "
            'rest, unsubscribe link included, behind "[Message clipped]"; send fewer or '
            "shorter stories, or slim the template",
            blocking=True,
        )
    return passed("size", f"HTML {n:,} bytes, under Gmail's clip at {GMAIL_CLIP:,}")


def link_problem(url: str, *, image: bool = False) -> str | None:
    """Why `url` is not a well-formed link for a mail, or None."""
    if not url.strip():
        return "is empty"
    if url != url.strip() or any(c.isspace() for c in url):
        return "contains white space"
    if url.startswith("#") and not image:
        return None  # a place in the message itself
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    allowed = ("http", "https") if image else ("http", "https", "mailto", "tel")
    if scheme not in allowed:
        if scheme in ("javascript", "vbscript", "data", "file"):
            return f"uses {scheme}:, which mail clients block"
        if not scheme:
            return "is relative or has no scheme (a mail has no page to be relative to)"
        return f"uses {scheme}: (only {', '.join(allowed)} work in a mail)"
    if scheme == "mailto":
        address = url[7:].split("?", 1)[0]
        return None if "@" in address else "is a mailto: without an address"
    if scheme == "tel":
        return None if any(c.isdigit() for c in url) else "is a tel: without a number"
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return "cannot be parsed (bad host or port)"
    host = parts.hostname or ""
    if not host or ("." not in host and host != "localhost"):
        return "has no host"
    return None


def links(preview: Preview) -> Finding:
    found: list[str] = []
    seen = 0
    for link in html_links(preview.html):
        seen += 1
        why = link_problem(link.url, image=link.tag == "img")
        if why:
            found.append(f"<{link.tag}> {link.url!r} {why}")
    for url in _TEXT_URL.findall(preview.text):
        seen += 1
        why = link_problem(url.rstrip(".,;:!?"))
        if why:
            found.append(f"text part {url!r} {why}")
    if found:
        shown = "; ".join(found[:10]) + (f"; and {len(found) - 10} more" if len(found) > 10 else "")
        return problem(
            "links",
            f"{len(found)} malformed link(s): {shown}; fix them in the story or the template",
            blocking=True,
        )
    return passed("links", f"{seen} link(s), all well formed")
