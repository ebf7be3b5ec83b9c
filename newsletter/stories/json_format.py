"""JSON stories: one object or an array of them, with the front matter's fields.

"body" (or "text", "paragraphs") is text, a string or a list of paragraphs: a "<b>" in it
is shown as typed. "body_html" (or "html") is HTML, sanitised to the stored subset
(stories/rich.py); when given it is the body, and the plain text is made from it.
"""

from __future__ import annotations

import json
from typing import Any

from newsletter.stories import rich
from newsletter.stories.drafts import (
    StoryDraft,
    StoryInputError,
    make_draft,
    split_blocks,
    text_field,
)


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


def _text_body(item: dict[str, Any], source: str) -> rich.RichBody:
    body = item.get("body", item.get("text", item.get("paragraphs", "")))
    if isinstance(body, list):
        paragraphs = [text_field(p) or "" for p in body]
        return rich.from_text(p for p in paragraphs if p.strip())
    if isinstance(body, str):
        return rich.from_text(split_blocks(body))
    if body is None:
        return rich.from_text([])
    raise StoryInputError(source, "'body' must be text or a list of paragraphs")


def _rich_body(item: dict[str, Any], source: str, url: str | None) -> rich.RichBody:
    html = item.get("body_html", item.get("html"))
    if html is None or html == "":
        return _text_body(item, source)
    if not isinstance(html, str):
        raise StoryInputError(source, "'body_html' must be HTML text")
    return rich.from_html(html, url if url and url.startswith(("http://", "https://")) else None)


def story_from_mapping(item: dict[str, Any], source: str) -> StoryDraft:
    """Keys: title (or headline), lede (or summary), body (text or list) or body_html
    (or html), url, author, image, image_alt, image_credit, section, …"""
    title = text_field(item.get("title") or item.get("headline"))
    if not title:
        raise StoryInputError(source, "has no headline (a 'title' field)")
    url = text_field(item.get("url") or item.get("link"))
    body = _rich_body(item, source, url)
    body = body.with_lede(text_field(item.get("lede") or item.get("summary")))
    return make_draft(
        source,
        title=title,
        paragraphs=body.paragraphs,
        body_html=body.html,
        url=url,
        author=text_field(item.get("author")),
        image=text_field(item.get("image")),
        image_alt=text_field(item.get("image_alt")),
        image_credit=text_field(item.get("image_credit")),
        section=text_field(item.get("section")),
        guid=text_field(item.get("guid") or item.get("id")),
        published=item.get("published") or item.get("published_at") or item.get("date"),
    )
