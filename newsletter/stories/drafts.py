"""A story parsed and checked, before anything is written: the shape every format yields.

Text is kept exactly as written (quotes, curly quotation marks, emoji, any "<script>" a
writer typed): it is data, escaped wherever it meets HTML, never markup of ours. The one
piece of markup, body_html, is sanitised here whoever made it (stories/rich.py), so no
way in can store a script.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from newsletter.errors import InvalidInput
from newsletter.stories.rich import sanitise

MAX_TITLE = 500


MAX_BYTES = 5 * 1024 * 1024


PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")


class StoryInputError(InvalidInput):
    """A file or body that cannot become a story; the message names where it came from."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__("story", f"{source}: {problem}")
        self.source = source


@dataclass
class StoryDraft:
    """A parsed story, checked and ready to store (nothing is written yet)."""

    title: str
    lede: str
    paragraphs: list[str]  # the text after the lede
    source: str
    url: str | None = None
    author: str | None = None
    image: str | None = None
    guid: str | None = None
    published_at: datetime | None = None
    body_html: str = ""  # sanitised HTML subset of the whole body, lede included (rich.py)
    image_alt: str | None = None
    image_credit: str | None = None
    section: str | None = None

    def identity(self) -> str:
        """How a re-import is recognised: the feed's guid, the link, or the text itself."""
        if self.guid:
            return self.guid
        if self.url:
            return self.url
        digest = hashlib.sha256("\n\n".join([self.title, self.lede, *self.paragraphs]).encode())
        return f"sha256:{digest.hexdigest()}"


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text with normalised line ends; empty and binary input are refused by name."""
    if len(data) > MAX_BYTES:
        raise StoryInputError(source, f"is larger than {MAX_BYTES // (1024 * 1024)} MB")
    if b"\x00" in data[:8192]:
        raise StoryInputError(source, "is a binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StoryInputError(source, "is not UTF-8 text (a binary file?)") from None
    if not text.strip():
        raise StoryInputError(source, "is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_blocks(text: str) -> list[str]:
    """Blank-line separated blocks, their lines kept (a list written as lines is one)."""
    out = []
    for block in PARAGRAPH_BREAK.split(text.strip()):
        lines = [line.strip() for line in block.split("\n")]
        kept = "\n".join(line for line in lines if line)
        if kept:
            out.append(kept)
    return out


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; hard-wrapped lines inside one are rejoined."""
    return [block.replace("\n", " ") for block in split_blocks(text)]


def text_field(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def parse_published(value: Any, source: str) -> datetime | None:
    """ISO 8601, RFC 2822 or a YAML date; a time without a zone is taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        raw = str(value).strip()
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            try:
                moment = parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                raise StoryInputError(
                    source, f"'published' is not a date: {raw!r} (use 2026-11-25T07:00:00Z)"
                ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_url(value: str | None, name: str, source: str) -> str | None:
    if value is None:
        return None
    if not re.match(r"^https?://[^\s<>\"]+$", value) or len(value) > 2000:
        raise StoryInputError(source, f"'{name}' must be an http(s) URL, got {value[:80]!r}")
    return value


def make_draft(
    source: str,
    *,
    title: str,
    paragraphs: list[str],
    url: str | None = None,
    author: str | None = None,
    image: str | None = None,
    guid: str | None = None,
    published: Any = None,
    body_html: str = "",
    image_alt: str | None = None,
    image_credit: str | None = None,
    section: str | None = None,
) -> StoryDraft:
    title = " ".join(title.split())
    if not title:
        raise StoryInputError(source, "has no headline")
    if len(title) > MAX_TITLE:
        raise StoryInputError(source, f"headline is longer than {MAX_TITLE} characters")
    if author and len(author) > 200:
        raise StoryInputError(source, "author is longer than 200 characters")
    for name, value, limit in (
        ("image_alt", image_alt, 500),
        ("image_credit", image_credit, 300),
        ("section", section, 100),
    ):
        if value and len(value) > limit:
            raise StoryInputError(source, f"'{name}' is longer than {limit} characters")
    lede, *rest = paragraphs or [""]
    return StoryDraft(
        title=title,
        lede=lede,
        paragraphs=rest,
        source=source,
        url=_check_url(url, "url", source),
        author=author,
        image=_check_url(image, "image", source),
        guid=guid[:2000] if guid else None,
        published_at=parse_published(published, source),
        body_html=sanitise(body_html) if body_html else "",
        image_alt=" ".join(image_alt.split()) if image_alt else None,
        image_credit=" ".join(image_credit.split()) if image_credit else None,
        section=" ".join(section.split()) if section else None,
    )
