"""RSS and Atom import with feedparser: entries become stories, known ones are skipped.

Feed content is HTML by definition: it is sanitised to the stored subset (stories/rich.py:
scripts, styles, event handlers, frames and javascript: links never survive; relative
links are made absolute against the entry's link) and kept as body_html, beside the text
a reader would see (paragraph by paragraph, lists as lists, links numbered).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from calendar import timegm
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
from sqlalchemy.orm import Session

from newsletter.stories import rich
from newsletter.stories.drafts import StoryDraft, StoryInputError, make_draft
from newsletter.stories.store import StoreReport, find_list_or_none, store_stories

FETCH_TIMEOUT = 20
MAX_FEED_BYTES = 20 * 1024 * 1024
# Problems feedparser reports that still leave a well-formed feed behind.
BENIGN = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


def html_to_paragraphs(html: str) -> list[str]:
    """The text a reader sees of an HTML fragment, one string per block (a list is one
    block of "- item" lines); links as their words."""
    return rich.blocks_text(rich.from_html(html).blocks, references=False)


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


def parse_feed(
    data: bytes, source: str, problems: list[str] | None = None
) -> tuple[str, list[StoryDraft]]:
    """The feed's title and its entries as drafts; a feed that does not parse is refused.

    An entry that cannot be a story (no headline, say) refuses the whole feed, unless a
    `problems` list is given (the poller: one bad entry must not hold the others back
    at every poll): then it is skipped and its reason appended there."""
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
    drafts = []
    for n, entry in enumerate(parsed.entries, 1):
        try:
            drafts.append(_entry_draft(entry, f"{source} entry {n}"))
        except StoryInputError as exc:
            if problems is None:
                raise
            problems.append(exc.message)
    return title, drafts


def _entry_draft(entry: Any, source: str) -> StoryDraft:
    title = " ".join(html_to_paragraphs(entry.get("title", "")))
    if not title:
        raise StoryInputError(source, "has no headline (an empty <title>)")
    link = entry.get("link") or None
    url = link if link and link.startswith(("http://", "https://")) else None
    content = entry.get("content") or []
    html = content[0].get("value", "") if content else entry.get("summary", "")
    body = rich.from_html(html or "", url)
    if content:  # a summary that is not the content's own opening is the lede
        summary = html_to_paragraphs(entry.get("summary", "") or "")
        opening = rich.blocks_text(body.blocks[:1], references=False)
        if summary and opening and summary[0] != opening[0]:
            body = body.with_lede(" ".join(summary))
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    published = datetime.fromtimestamp(timegm(when), UTC) if when else None
    image, image_alt = _entry_image(entry)
    lead = body.take_lead_image(image)
    if lead is not None:
        image, image_alt = lead.attrs["src"], lead.attrs.get("alt") or None
    return make_draft(
        source,
        title=title,
        paragraphs=body.paragraphs,
        body_html=body.html,
        url=url,
        author=(entry.get("author") or None),
        image=image,
        image_alt=image_alt,
        guid=entry.get("id") or link,
        published=published,
    )


def _entry_image(entry: Any) -> tuple[str | None, str | None]:
    """The entry's own image (Media RSS or an image enclosure); its alt text is not known."""
    for media in entry.get("media_content", []) + entry.get("media_thumbnail", []):
        url = media.get("url", "")
        if url.startswith(("http://", "https://")) and media.get("medium", "image") == "image":
            return str(url), None
    for enclosure in entry.get("enclosures", []):
        if enclosure.get("type", "").startswith("image/") and enclosure.get("href", "").startswith(
            ("http://", "https://")
        ):
            return str(enclosure["href"]), None
    return None, None


def import_feed(session: Session, url_or_file: str, list_slug: str | None = None) -> FeedImport:
    """Read, parse and check the whole feed, then store its new entries in one go."""
    mailing_list = find_list_or_none(session, list_slug)
    data = read_feed_source(url_or_file)
    title, drafts = parse_feed(data, url_or_file)
    report = store_stories(session, drafts, mailing_list)
    return FeedImport(title=title, report=report, entries=len(drafts))
