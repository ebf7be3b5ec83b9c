"""Markdown with YAML front matter (title, url, author, published, image, image_alt,
image_credit, section).

The body is CommonMark rendered by markdown-it-py with raw HTML off: a "<script>" or an
"<img onerror=…>" written in the Markdown is shown as the characters written, never run.
The rendered HTML then goes the way every rich body goes (stories/rich.py): sanitised,
cut into blocks, stored as body_html beside its plain text. Headings are the body's
sub-headings (h3/h4); a leading "# Headline" is the title when the front matter has none,
and an image alone at the top is the lead image when the front matter names none (or
names the same one: it is shown once).
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from markdown_it import MarkdownIt

from newsletter.stories import rich
from newsletter.stories.drafts import StoryDraft, StoryInputError, make_draft, text_field

FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)

# CommonMark as written; "html": False renders raw HTML as text. markdown-it also
# refuses javascript:, vbscript:, file: and data: link targets (the text stays).
MARKDOWN = MarkdownIt("commonmark", {"html": False})


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


def markdown_body(body: str, *, take_title: bool) -> tuple[str | None, rich.RichBody]:
    """The rendered body, and its leading heading as the title when asked to take it."""
    env: dict[str, Any] = {}
    tokens = MARKDOWN.parse(body, env)
    title = None
    if take_title and len(tokens) >= 3 and tokens[0].type == "heading_open":
        heading = MARKDOWN.renderer.render(tokens[:3], MARKDOWN.options, env)
        title = " ".join(rich.blocks_text(rich.from_html(heading).blocks, references=False))
        tokens = tokens[3:]
    html = MARKDOWN.renderer.render(tokens, MARKDOWN.options, env)
    return title, rich.from_html(html)


def parse_markdown(text: str, source: str) -> StoryDraft:
    """Front matter (title, url, author, published, image, …) and a Markdown body."""
    meta, body = _front_matter(text, source)
    title = text_field(meta.get("title") or meta.get("headline"))
    heading, rich_body = markdown_body(body, take_title=not title)
    title = title or heading
    if not title:
        raise StoryInputError(
            source, "has no headline: give 'title:' in the front matter or start with '# '"
        )
    url = text_field(meta.get("url") or meta.get("link"))
    image = text_field(meta.get("image"))
    image_alt = text_field(meta.get("image_alt"))
    lead = rich_body.take_lead_image(image)
    if lead is not None:
        image = lead.attrs["src"]
        image_alt = image_alt or lead.attrs.get("alt") or None
    rich_body = rich_body.with_lede(text_field(meta.get("lede") or meta.get("summary")))
    return make_draft(
        source,
        title=title,
        paragraphs=rich_body.paragraphs,
        body_html=rich_body.html,
        url=url,
        author=text_field(meta.get("author")),
        image=image,
        image_alt=image_alt,
        image_credit=text_field(meta.get("image_credit") or meta.get("credit")),
        section=text_field(meta.get("section")),
        guid=text_field(meta.get("guid") or meta.get("id")),
        published=meta.get("published") or meta.get("date"),
    )
