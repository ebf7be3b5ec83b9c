"""Stories from a web page: fetch it with care, keep the article, drop the site around it.

A page is fetched only over http(s), with timeouts, a byte cap, a few redirects at most
and only when it says it is HTML; every way it can fail is one line naming the URL the
operator gave (a StoryInputError: CLI exit 2, HTTP 422), never a traceback.

trafilatura finds the article in the page: the headline, byline and date from the
page's metadata, the body without the navigation, sign-up banners, share buttons,
related links, comments and footer around it. Its body then goes the way of every rich
body (rich.from_html): the sanitised HTML subset and the plain text of the same blocks,
whose first paragraph is the lede; a headline repeated on top of it and the lead image
repeated in it are dropped, and a "body" that is mostly links (a menu) is no article.
The lead image, its alt text and the canonical address come from the page's own
metadata (og:, twitter:, <link rel="canonical">), which says what the site means to
share more reliably than any guess over its markup; the canonical address is the
story's link and identity, so the same article reached through two URLs is one story.

The fetching half (`fetch`) also serves the feed poller (sources/poll.py), which
sends conditional requests through it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import lxml.html
from lxml import etree

from newsletter import __version__
from newsletter.netnames import never_resolves, public_only
from newsletter.stories import rich
from newsletter.stories.drafts import (
    MAX_BYTES,
    StoryDraft,
    StoryInputError,
    make_draft,
    parse_published,
)
from newsletter.stories.rich import Element, RichBody

SCHEMES = ("http", "https")
HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_PAGE_BYTES = MAX_BYTES  # 5 MB, as for a story file
MAX_REDIRECTS = 5
CONNECT_SECONDS = 10.0
READ_SECONDS = 20.0
DEADLINE_SECONDS = 30.0  # the whole exchange: a server dripping bytes is cut off here
MAX_URL = 2000
MIN_ARTICLE_CHARS = 40  # of text outside links: less is a page of links, not a story
USER_AGENT = f"newsletter/{__version__} (story fetcher)"
# What an API schema promises of an address (check_url says why one is refused).
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f\x7f]+$"
URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

ARTICLE_TYPES = ("Article", "NewsArticle", "ReportageNewsArticle", "BlogPosting", "Report")


@dataclass(frozen=True)
class Fetched:
    """A response read in full (within the cap): the final URL after redirects."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", "")).split(";")[0].strip().lower()


def is_url(value: str) -> bool:
    """Does the operator mean an address rather than a file (anything with a scheme)?"""
    return bool(URL_LIKE.match(value.strip()))


def check_url(url: str) -> str:
    """The URL stripped, or a StoryInputError saying why it cannot be fetched."""
    url = url.strip()
    shown = url[:200]
    if len(url) > MAX_URL:
        raise StoryInputError(shown, f"the address is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise StoryInputError(shown, "is not a valid web address") from None
    if parts.scheme.lower() not in SCHEMES:
        raise StoryInputError(shown, "only http:// and https:// addresses can be fetched")
    if not parts.hostname or re.search(r"[\s\x00-\x1f\x7f]", url):
        raise StoryInputError(shown, "is not a valid web address")
    return url


@contextmanager
def http_client(*, private: bool = True) -> Iterator[httpx.Client]:
    """One client for a run of fetches: kept connections, the limits every fetch has;
    without `private`, no request (nor redirect) to a non-public address (netnames.py)."""
    timeout = httpx.Timeout(READ_SECONDS, connect=CONNECT_SECONDS)
    with httpx.Client(
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        event_hooks={} if private else {"request": [public_only(_refused)]},
    ) as client:
        yield client


def _refused(url: str, reason: str) -> StoryInputError:
    return StoryInputError(url[:200], reason)


def fetch(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = MAX_PAGE_BYTES,
    accept: tuple[str, ...] | None = None,
    source: str | None = None,
) -> Fetched:
    """GET `url` and read it whole, or raise a StoryInputError naming `source` (the URL).

    `accept` lists the content types taken (None: any). A 304 is returned as it is, for
    the conditional requests of the feed poller; any other answer but 2xx is an error.
    """
    source = source or url
    url = check_url(url)
    host = urlsplit(url).hostname or ""
    if never_resolves(host):
        raise StoryInputError(source, f"{host} is a reserved example name, not a site")
    started = time.monotonic()
    try:
        with client.stream("GET", url, headers=dict(headers or {})) as response:
            if response.status_code == 304:
                return Fetched(str(response.url), 304, response.headers, b"")
            if not 200 <= response.status_code < 300:
                reason = response.reason_phrase or "error"
                raise StoryInputError(
                    source, f"could not be fetched (HTTP {response.status_code} {reason})"
                )
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if accept is not None and kind not in accept:
                raise StoryInputError(
                    source, f"is not an HTML page (its content type is {kind or 'not given'})"
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise StoryInputError(source, f"is larger than {_size(max_bytes)}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise StoryInputError(source, f"is larger than {_size(max_bytes)}")
                if time.monotonic() - started > DEADLINE_SECONDS:
                    raise StoryInputError(
                        source, f"took longer than {DEADLINE_SECONDS:.0f} seconds to download"
                    )
                chunks.append(chunk)
            return Fetched(str(response.url), response.status_code, response.headers,
                           b"".join(chunks))  # fmt: skip
    except httpx.TooManyRedirects:
        raise StoryInputError(source, f"redirects more than {MAX_REDIRECTS} times") from None
    except httpx.UnsupportedProtocol:
        raise StoryInputError(source, "redirects to an address that is not http(s)") from None
    except httpx.TimeoutException:
        raise StoryInputError(
            source, f"did not answer within {READ_SECONDS:.0f} seconds (timed out)"
        ) from None
    except httpx.InvalidURL as exc:
        raise StoryInputError(source, f"is not a valid web address ({exc})") from None
    except httpx.TransportError as exc:
        raise StoryInputError(source, f"could not be reached ({_reason(exc)})") from None
    except httpx.HTTPError as exc:
        raise StoryInputError(source, f"could not be fetched ({_reason(exc)})") from None


def _size(n: int) -> str:
    return f"{n // 2**20} MB" if n >= 2**20 else f"{n} bytes"


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:200]


# The article ---------------------------------------------------------------------------


def fetch_story(client: httpx.Client, url: str) -> StoryDraft:
    """The article at `url` as a draft (nothing stored); errors name the URL."""
    page = fetch(client, url, accept=HTML_TYPES)
    return extract_story(page, source=url)


def _decode(page: Fetched) -> str:
    match = re.search(r"charset=[\"']?([\w.:-]+)", page.headers.get("content-type", ""), re.I)
    charset = match.group(1) if match else None
    if charset:
        try:
            return page.body.decode(charset, errors="replace")
        except LookupError:
            pass
    from trafilatura.utils import decode_file

    return str(decode_file(page.body))


def extract_story(page: Fetched, source: str) -> StoryDraft:
    """Headline, byline, date, body, lead image and canonical link of an HTML page."""
    try:
        import trafilatura
        from trafilatura.metadata import extract_metadata
    except ImportError as exc:  # a broken install (lxml without lxml_html_clean)
        from newsletter.errors import Unavailable

        raise Unavailable(f"page extraction is not available: {exc}") from None

    html = _decode(page)
    if not html.strip():
        raise StoryInputError(source, "is an empty page")
    try:
        tree = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        raise StoryInputError(source, "is not an HTML page that can be read") from None
    meta = _page_meta(tree, page.url)
    body = trafilatura.extract(
        html,
        url=page.url,
        output_format="html",
        include_comments=False,
        include_tables=False,
        include_images=True,
        include_links=True,
        include_formatting=True,
        favor_precision=True,
        with_metadata=False,
    )
    if not body:
        raise StoryInputError(source, "has no article text that could be found")
    metadata = extract_metadata(html, page.url)
    title = metadata.title or meta.get("title") or ""
    image = meta.get("image") or _http_url(metadata.image, page.url)
    image_alt = meta.get("image_alt")
    rich_body, opening = _body(body, image, title, page.url)
    if image is None and opening is not None:  # a page without og:image: its first picture
        image, image_alt = opening.attrs.get("src"), opening.attrs.get("alt")
    paragraphs = rich_body.paragraphs
    if not paragraphs:
        raise StoryInputError(source, "has no article text that could be found")
    author = metadata.author or meta.get("author")
    return make_draft(
        source,
        title=title,
        paragraphs=paragraphs,
        url=meta["url"],
        guid=meta["url"],
        author=_cut(author.replace("; ", ", "), 200) if author else None,
        published=_published(meta.get("published"), metadata.date),
        image=image,
        image_alt=_cut(image_alt, 500),
        section=_cut(meta.get("section"), 100),
        body_html=rich_body.html,
    )


def _published(*candidates: str | None) -> datetime | None:
    """The first date the page gives that reads as one; a page is not refused for a
    date its site wrote oddly (the story is then dated when it is stored)."""
    for value in candidates:
        try:
            moment = parse_published(value, "page")
        except StoryInputError:
            continue
        if moment is not None:
            return moment
    return None


def _cut(value: str | None, limit: int) -> str | None:
    if not value:
        return None
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _body(
    html: str, lead_image: str | None, title: str, base: str
) -> tuple[RichBody, Element | None]:
    """The extracted body as the project's rich body (rich.py: sanitised HTML blocks and
    the plain text of the same blocks), and the picture it opened with when that is the
    lead image (or the only candidate for one)."""
    root = lxml.html.fromstring(f"<div>{_inner_body(html)}</div>")
    headline = " ".join(title.split()).casefold()
    for child in list(root.iterchildren()):
        # The headline is the story's title: repeated on top of the body it would be
        # the lede.
        text = " ".join(child.text_content().split()).casefold()
        if text and text != headline:
            break
        if text == headline:
            child.drop_tree()
    words = len(" ".join(root.text_content().split()))
    linked = sum(len(" ".join(a.text_content().split())) for a in root.iter("a"))
    if words - linked < MIN_ARTICLE_CHARS:  # a menu or a list of links is no article
        return RichBody([]), None
    inner = escape(root.text or "", quote=False) + "".join(
        lxml.html.tostring(child, encoding="unicode") for child in root.iterchildren()
    )
    body = rich.from_html(inner, base)
    # The lead image is shown above the story: the same picture on top of the body
    # would be shown twice.
    return body, body.take_lead_image(lead_image)


def _inner_body(html: str) -> str:
    match = re.search(r"<body[^>]*>(.*)</body>", html, re.S | re.I)
    return match.group(1) if match else html


def _page_meta(tree: Any, page_url: str) -> dict[str, str]:
    """What the page says about itself: canonical URL, og:/twitter: image, JSON-LD."""
    found: dict[str, str] = {}
    props: dict[str, str] = {}
    for tag in tree.iter("meta"):
        key = (tag.get("property") or tag.get("name") or "").strip().lower()
        value = (tag.get("content") or "").strip()
        if key and value and key not in props:
            props[key] = value
    canonical = None
    for link in tree.iter("link"):
        if "canonical" in (link.get("rel") or "").lower().split() and link.get("href"):
            canonical = link.get("href").strip()
            break
    found["url"] = (
        _http_url(canonical, page_url) or _http_url(props.get("og:url"), page_url) or (page_url)
    )
    image = _http_url(props.get("og:image") or props.get("og:image:url"), page_url) or _http_url(
        props.get("twitter:image") or props.get("twitter:image:src"), page_url
    )
    if image:
        found["image"] = image
        alt = props.get("og:image:alt") or props.get("twitter:image:alt")
        if alt:
            found["image_alt"] = alt
    for key, name in (("og:title", "title"), ("article:section", "section")):
        if props.get(key):
            found[name] = props[key]
    article = _json_ld_article(tree)
    published = (
        props.get("article:published_time")
        or _text(article.get("datePublished"))
        or _first_time(tree)
    )
    if published:
        found["published"] = published
    author = _author(article.get("author"))
    if author:
        found["author"] = author
    return found


def _http_url(value: str | None, base: str) -> str | None:
    if not value:
        return None
    absolute = urljoin(base, value.strip())
    if not absolute.startswith(("http://", "https://")) or len(absolute) > MAX_URL:
        return None
    if re.search(r"[\s<>\"]", absolute):
        return None
    return absolute


def _json_ld_article(tree: Any) -> dict[str, Any]:
    for script in tree.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue
        for item in _ld_items(data):
            kinds = item.get("@type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if any(k in ARTICLE_TYPES for k in kinds if isinstance(k, str)):
                return item
    return {}


def _ld_items(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _ld_items(item)
    elif isinstance(data, dict):
        yield data
        if isinstance(data.get("@graph"), list):
            yield from _ld_items(data["@graph"])


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _author(value: Any) -> str | None:
    people = value if isinstance(value, list) else [value]
    names = []
    for person in people:
        name = person.get("name") if isinstance(person, dict) else person
        if isinstance(name, str) and name.strip():
            names.append(" ".join(name.split()))
    return ", ".join(names) or None


def _first_time(tree: Any) -> str | None:
    for element in tree.iter("time"):
        value = (element.get("datetime") or "").strip()
        if re.match(r"^\d{4}-\d{2}-\d{2}", value):
            return value
    return None
