"""Story ingestion: plain text like a scraped page, Markdown with front matter, JSON.

Every input is parsed and checked in full before anything is written, so a bad file
in a batch leaves the store untouched. Text is kept exactly as written (quotes, curly
quotation marks, emoji, any "<script>" a writer typed): it is data, escaped wherever
it meets HTML, never markup of ours. Feeds live in newsletter/feeds.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from newsletter.addresses import InvalidInput
from newsletter.models import MailingList, Story, utcnow
from newsletter.subscriptions import find_list

MAX_TITLE = 500
MAX_HEADLINE_GUESS = 200  # a plain-text paragraph longer than this is prose, not a headline
MAX_BYTES = 5 * 1024 * 1024
MAX_SLUG = 80
FORMATS = ("text", "markdown", "json")

# Site furniture that scrapers pick up above a story: newsletter sign-up banners and
# the like. Only leading paragraphs are checked, so a story may still say "subscribe".
BANNER = re.compile(
    r"\b(sign\s*-?\s*up|subscribe|newsletter|delivered (straight )?to (you|your inbox)"
    r"|get the latest|advertisement|skip to (main )?content|share this|follow us)\b",
    re.IGNORECASE,
)
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

    def identity(self) -> str:
        """How a re-import is recognised: the feed's guid, the link, or the text itself."""
        if self.guid:
            return self.guid
        if self.url:
            return self.url
        digest = hashlib.sha256("\n\n".join([self.title, self.lede, *self.paragraphs]).encode())
        return f"sha256:{digest.hexdigest()}"


@dataclass
class StoreReport:
    added: list[Story] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sources already stored


# Reading ---------------------------------------------------------------------------------


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


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; hard-wrapped lines inside one are rejoined."""
    out = []
    for block in PARAGRAPH_BREAK.split(text.strip()):
        lines = [line.strip() for line in block.split("\n")]
        joined = " ".join(line for line in lines if line)
        if joined:
            out.append(joined)
    return out


def detect_format(text: str, filename: str = "") -> str:
    suffix = Path(filename).suffix.lower()
    if suffix in (".md", ".markdown"):
        return "markdown"
    if suffix == ".json":
        return "json"
    head = text.lstrip()
    if head.startswith("---\n") or text.startswith("---\n"):
        return "markdown"
    if head[:1] in "{[":
        return "json"
    return "text"


def parse_story_bytes(data: bytes, source: str, fmt: str | None = None) -> list[StoryDraft]:
    """One input (a file or an HTTP body) as stories; raises StoryInputError naming source."""
    text = decode_text(data, source)
    fmt = fmt or detect_format(text, source)
    if fmt == "markdown":
        return [parse_markdown(text, source)]
    if fmt == "json":
        return parse_json(text, source)
    if fmt == "text":
        return [parse_plain(text, source)]
    raise StoryInputError(source, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def parse_story_file(path: Path) -> list[StoryDraft]:
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StoryInputError(source, "no such file") from None
    except IsADirectoryError:
        raise StoryInputError(source, "is a directory, not a story file") from None
    except OSError as exc:
        raise StoryInputError(source, f"cannot be read ({exc.strerror})") from None
    return parse_story_bytes(data, source)


# Plain text --------------------------------------------------------------------------------


def _looks_like_headline(paragraph: str) -> bool:
    """Headlines are short and do not end like a sentence of prose."""
    return len(paragraph) <= MAX_HEADLINE_GUESS and not paragraph.endswith((".", ",", ";", ":"))


def parse_plain(text: str, source: str) -> StoryDraft:
    """A scraped page: leading site banners dropped, then headline, lede and paragraphs."""
    paragraphs = split_paragraphs(text)
    while paragraphs and BANNER.search(paragraphs[0]) and len(paragraphs[0]) <= 200:
        paragraphs.pop(0)
    if not paragraphs or not _looks_like_headline(paragraphs[0]):
        raise StoryInputError(
            source,
            "has no headline: the first paragraph should be a short title line, "
            "followed by a blank line and the story",
        )
    title, *rest = paragraphs
    return make_draft(source, title=title, paragraphs=rest)


# Markdown ------------------------------------------------------------------------------------

FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$")
MD_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
MD_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
MD_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")


def _front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    match = FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise StoryInputError(source, f"front matter is not valid YAML ({problem})") from None
    if not isinstance(meta, dict):
        raise StoryInputError(source, "front matter must be 'key: value' lines")
    return {str(k).lower(): v for k, v in meta.items()}, text[match.end() :]


def markdown_to_text(paragraph: str) -> str:
    """Readable text from one Markdown paragraph: links keep their address, emphasis goes.

    Raw HTML is deliberately left as the characters written: we show it, never run it.
    """
    paragraph = MD_IMAGE.sub(lambda m: m.group(1), paragraph)
    paragraph = MD_LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", paragraph)
    paragraph = MD_STRONG.sub(lambda m: m.group(2), paragraph)
    heading = HEADING.match(paragraph)
    if heading:
        paragraph = heading.group(1)
    return re.sub(r"^>\s?", "", paragraph).strip()


def parse_markdown(text: str, source: str) -> StoryDraft:
    """Front matter (title, url, author, published, image) and a Markdown body."""
    meta, body = _front_matter(text, source)
    blocks = PARAGRAPH_BREAK.split(body.strip())
    title = _text_field(meta.get("title") or meta.get("headline"))
    if not title and blocks and HEADING.match(blocks[0].strip()):
        first = blocks.pop(0).strip()
        title = HEADING.match(first).group(1)  # type: ignore[union-attr]
    image = _text_field(meta.get("image"))
    if not image:
        found = MD_IMAGE.search(body)
        image = found.group(2) if found else None
    paragraphs = [p for p in (markdown_to_text(" ".join(b.split("\n"))) for b in blocks) if p]
    lede = _text_field(meta.get("lede") or meta.get("summary"))
    if lede:
        paragraphs.insert(0, lede)
    if not title:
        raise StoryInputError(
            source, "has no headline: give 'title:' in the front matter or start with '# '"
        )
    return make_draft(
        source,
        title=title,
        paragraphs=paragraphs,
        url=_text_field(meta.get("url") or meta.get("link")),
        author=_text_field(meta.get("author")),
        image=image,
        guid=_text_field(meta.get("guid") or meta.get("id")),
        published=meta.get("published") or meta.get("date"),
    )


# JSON -------------------------------------------------------------------------------------


def parse_json(text: str, source: str) -> list[StoryDraft]:
    """An object, an array of objects, or {"stories": [...]}."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoryInputError(source, f"is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("stories"), list):
        data = data["stories"]
    items = data if isinstance(data, list) else [data]
    if not items:
        raise StoryInputError(source, "holds no stories")
    drafts = []
    for n, item in enumerate(items, 1):
        where = source if len(items) == 1 else f"{source} (story {n})"
        if not isinstance(item, dict):
            raise StoryInputError(where, "a story must be a JSON object")
        drafts.append(story_from_mapping(item, where))
    return drafts


def story_from_mapping(item: dict[str, Any], source: str) -> StoryDraft:
    """Keys: title (or headline), lede (or summary), body (text or list), url, author, …"""
    title = _text_field(item.get("title") or item.get("headline"))
    if not title:
        raise StoryInputError(source, "has no headline (a 'title' field)")
    body = item.get("body", item.get("text", item.get("paragraphs", "")))
    if isinstance(body, list):
        paragraphs = [_text_field(p) or "" for p in body]
        paragraphs = [" ".join(p.split("\n")).strip() for p in paragraphs if p.strip()]
    elif isinstance(body, str):
        paragraphs = split_paragraphs(body)
    else:
        raise StoryInputError(source, "'body' must be text or a list of paragraphs")
    lede = _text_field(item.get("lede") or item.get("summary"))
    if lede:
        paragraphs.insert(0, " ".join(lede.split("\n")))
    return make_draft(
        source,
        title=title,
        paragraphs=paragraphs,
        url=_text_field(item.get("url") or item.get("link")),
        author=_text_field(item.get("author")),
        image=_text_field(item.get("image")),
        guid=_text_field(item.get("guid") or item.get("id")),
        published=item.get("published") or item.get("published_at") or item.get("date"),
    )


# Shared checks ------------------------------------------------------------------------------


def _text_field(value: Any) -> str | None:
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
) -> StoryDraft:
    title = " ".join(title.split())
    if not title:
        raise StoryInputError(source, "has no headline")
    if len(title) > MAX_TITLE:
        raise StoryInputError(source, f"headline is longer than {MAX_TITLE} characters")
    if author and len(author) > 200:
        raise StoryInputError(source, "author is longer than 200 characters")
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
    )


# Storing ---------------------------------------------------------------------------------------


def slugify(title: str) -> str:
    """A readable ASCII slug from a headline, cut at a word boundary."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    if len(slug) > MAX_SLUG:
        slug = slug[:MAX_SLUG].rsplit("-", 1)[0]
    return slug or "story"


def _unique_slug(session: Session, base: str, taken: set[str]) -> str:
    """base, base-2, base-3…: a slug never changes once given, so links stay good."""
    existing = set(session.scalars(select(Story.slug).where(Story.slug.like(f"{base}%"))))
    existing |= taken
    slug, n = base, 1
    while slug in existing:
        n += 1
        slug = f"{base}-{n}"
    return slug


def find_list_or_none(session: Session, slug: str | None) -> MailingList | None:
    return find_list(session, slug) if slug else None


def known_identities(session: Session, identities: Iterable[str]) -> set[str]:
    """Which of these guids or links the store holds already (as guid or url)."""
    wanted = list(dict.fromkeys(identities))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = session.execute(
            select(Story.guid, Story.url).where(or_(Story.guid.in_(chunk), Story.url.in_(chunk)))
        )
        for guid, url in rows:
            found.update(v for v in (guid, url) if v)
    return found


def store_stories(
    session: Session,
    drafts: Sequence[StoryDraft],
    mailing_list: MailingList | None = None,
    *,
    now: datetime | None = None,
) -> StoreReport:
    """Add the drafts not stored yet (by guid, link or identical text); flushes, no commit."""
    now = now or utcnow()
    report = StoreReport()
    seen = known_identities(session, [i for d in drafts for i in _identities(d)])
    taken: set[str] = set()
    for draft in drafts:
        ids = _identities(draft)
        if seen & set(ids):
            report.skipped.append(draft.source)
            continue
        seen.update(ids)
        slug = _unique_slug(session, slugify(draft.title), taken)
        taken.add(slug)
        story = Story(
            slug=slug,
            title=draft.title,
            lede=draft.lede,
            body="\n\n".join(draft.paragraphs),
            url=draft.url,
            author=draft.author,
            image=draft.image,
            guid=draft.identity(),
            list_id=mailing_list.id if mailing_list else None,
            published_at=draft.published_at or now,
            created_at=now,
        )
        session.add(story)
        report.added.append(story)
    session.flush()
    return report


def _identities(draft: StoryDraft) -> list[str]:
    return [v for v in dict.fromkeys([draft.identity(), draft.guid, draft.url]) if v]


def add_story_files(
    session: Session, paths: Sequence[Path], list_slug: str | None = None
) -> StoreReport:
    """Parse every file first; any bad one raises before a single story is written."""
    mailing_list = find_list_or_none(session, list_slug)
    drafts = [draft for path in paths for draft in parse_story_file(path)]
    return store_stories(session, drafts, mailing_list)


# Reading back -----------------------------------------------------------------------------------


def story_paragraphs(story: Story) -> list[str]:
    """The lede and every paragraph after it, in order."""
    rest = [p for p in story.body.split("\n\n") if p] if story.body else []
    return [story.lede, *rest] if story.lede else rest


def story_record(story: Story, base_url: str, list_slug: str | None = None) -> dict[str, Any]:
    return {
        "id": story.id,
        "slug": story.slug,
        "title": story.title,
        "lede": story.lede,
        "paragraphs": len(story_paragraphs(story)),
        "url": story.url,
        "author": story.author,
        "image": story.image,
        "list": list_slug,
        "published_at": story.published_at.isoformat(),
        "page_url": f"{base_url}/stories/{story.slug}",
    }


def story_records(session: Session, base_url: str, list_slug: str | None = None) -> list[dict]:
    """Newest first; with a list, its own stories and those meant for every list."""
    query = select(Story, MailingList.slug).outerjoin(MailingList, Story.list_id == MailingList.id)
    if list_slug:
        mlist = find_list_or_none(session, list_slug)
        assert mlist is not None
        query = query.where(or_(Story.list_id == mlist.id, Story.list_id.is_(None)))
    query = query.order_by(Story.published_at.desc(), Story.id.desc())
    return [story_record(story, base_url, slug) for story, slug in session.execute(query)]


def get_story(session: Session, slug: str) -> Story | None:
    return session.scalar(select(Story).where(Story.slug == slug))
