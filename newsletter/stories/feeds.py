"""RSS and Atom import with feedparser: entries become stories, known ones are skipped.

Feed content is HTML by definition, so it is turned into the text a reader would see
(paragraph by paragraph, scripts and styles dropped) before it is stored; from then on
it is text like any other story and escaped wherever it meets HTML.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from calendar import timegm
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
from sqlalchemy.orm import Session

from newsletter.stories.drafts import StoryDraft, StoryInputError, make_draft
from newsletter.stories.store import StoreReport, find_list_or_none, store_stories

FETCH_TIMEOUT = 20
MAX_FEED_BYTES = 20 * 1024 * 1024
BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "figure", "figcaption", "section", "article", "table", "tr",
}  # fmt: skip
HIDDEN_TAGS = {"script", "style", "noscript", "template"}
# Problems feedparser reports that still leave a well-formed feed behind.
BENIGN = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


class _TextExtractor(HTMLParser):
    """Visible text of an HTML fragment, one paragraph per block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.current: list[str] = []
        self.hidden = 0

    def _flush(self) -> None:
        text = " ".join("".join(self.current).split())
        if text:
            self.paragraphs.append(text)
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN_TAGS:
            self.hidden += 1
        elif tag in BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.current.append(data)


def html_to_paragraphs(html: str) -> list[str]:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    parser._flush()
    return parser.paragraphs


@dataclass
class FeedImport:
    title: str
    report: StoreReport
    entries: int


def read_feed_source(url_or_file: str) -> bytes:
    """The feed's bytes from an http(s) URL or a local file; failures name the source."""
    if url_or_file.startswith(("http://", "https://")):
        request = urllib.request.Request(url_or_file, headers={"User-Agent": "newsletter/0.1"})
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
                return bytes(response.read(MAX_FEED_BYTES + 1))
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoryInputError(url_or_file, f"could not be fetched ({reason})") from None
    path = Path(url_or_file)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise StoryInputError(url_or_file, "no such file") from None
    except OSError as exc:
        raise StoryInputError(url_or_file, f"cannot be read ({exc.strerror})") from None


def parse_feed(data: bytes, source: str) -> tuple[str, list[StoryDraft]]:
    """The feed's title and its entries as drafts; a feed that does not parse is refused."""
    if not data.strip():
        raise StoryInputError(source, "is empty")
    if len(data) > MAX_FEED_BYTES:
        raise StoryInputError(source, "is larger than 20 MB")
    parsed = feedparser.parse(data)
    version = parsed.get("version") or ""
    why = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if not version or (why is not None and not isinstance(why, BENIGN)):
        detail = f" ({str(why).splitlines()[0]})" if why else ""
        raise StoryInputError(source, f"does not parse as an RSS or Atom feed{detail}")
    title = parsed.feed.get("title", "") or source
    drafts = [
        _entry_draft(entry, f"{source} entry {n}") for n, entry in enumerate(parsed.entries, 1)
    ]
    return title, [d for d in drafts if d is not None]


def _entry_draft(entry: Any, source: str) -> StoryDraft:
    title = " ".join(html_to_paragraphs(entry.get("title", "")))
    if not title:
        raise StoryInputError(source, "has no headline (an empty <title>)")
    content = entry.get("content") or []
    html = content[0].get("value", "") if content else entry.get("summary", "")
    paragraphs = html_to_paragraphs(html or "")
    summary = html_to_paragraphs(entry.get("summary", "") or "")
    if content and summary and paragraphs and summary[0] != paragraphs[0]:
        paragraphs.insert(0, " ".join(summary))
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    published = datetime.fromtimestamp(timegm(when), UTC) if when else None
    image = _entry_image(entry)
    link = entry.get("link") or None
    return make_draft(
        source,
        title=title,
        paragraphs=paragraphs,
        url=link if link and link.startswith(("http://", "https://")) else None,
        author=(entry.get("author") or None),
        image=image,
        guid=entry.get("id") or link,
        published=published,
    )


def _entry_image(entry: Any) -> str | None:
    for media in entry.get("media_content", []) + entry.get("media_thumbnail", []):
        url = media.get("url", "")
        if url.startswith(("http://", "https://")):
            return str(url)
    for enclosure in entry.get("enclosures", []):
        if enclosure.get("type", "").startswith("image/") and enclosure.get("href", "").startswith(
            ("http://", "https://")
        ):
            return str(enclosure["href"])
    return None


def import_feed(session: Session, url_or_file: str, list_slug: str | None = None) -> FeedImport:
    """Read, parse and check the whole feed, then store its new entries in one go."""
    mailing_list = find_list_or_none(session, list_slug)
    data = read_feed_source(url_or_file)
    title, drafts = parse_feed(data, url_or_file)
    report = store_stories(session, drafts, mailing_list)
    return FeedImport(title=title, report=report, entries=len(drafts))
