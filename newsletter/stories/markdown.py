"""Markdown with YAML front matter (title, url, author, published, image)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from newsletter.stories.drafts import (
    PARAGRAPH_BREAK,
    StoryDraft,
    StoryInputError,
    make_draft,
    text_field,
)

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
    title = text_field(meta.get("title") or meta.get("headline"))
    if not title and blocks and HEADING.match(blocks[0].strip()):
        first = blocks.pop(0).strip()
        title = HEADING.match(first).group(1)  # type: ignore[union-attr]
    image = text_field(meta.get("image"))
    if not image:
        found = MD_IMAGE.search(body)
        image = found.group(2) if found else None
    paragraphs = [p for p in (markdown_to_text(" ".join(b.split("\n"))) for b in blocks) if p]
    lede = text_field(meta.get("lede") or meta.get("summary"))
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
        url=text_field(meta.get("url") or meta.get("link")),
        author=text_field(meta.get("author")),
        image=image,
        guid=text_field(meta.get("guid") or meta.get("id")),
        published=meta.get("published") or meta.get("date"),
    )
