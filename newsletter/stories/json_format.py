"""JSON stories: one object or an array of them, with the front matter's fields."""

from __future__ import annotations

import json
from typing import Any

from newsletter.stories.drafts import (
    StoryDraft,
    StoryInputError,
    make_draft,
    split_paragraphs,
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


def story_from_mapping(item: dict[str, Any], source: str) -> StoryDraft:
    """Keys: title (or headline), lede (or summary), body (text or list), url, author, …"""
    title = text_field(item.get("title") or item.get("headline"))
    if not title:
        raise StoryInputError(source, "has no headline (a 'title' field)")
    body = item.get("body", item.get("text", item.get("paragraphs", "")))
    if isinstance(body, list):
        paragraphs = [text_field(p) or "" for p in body]
        paragraphs = [" ".join(p.split("\n")).strip() for p in paragraphs if p.strip()]
    elif isinstance(body, str):
        paragraphs = split_paragraphs(body)
    else:
        raise StoryInputError(source, "'body' must be text or a list of paragraphs")
    lede = text_field(item.get("lede") or item.get("summary"))
    if lede:
        paragraphs.insert(0, " ".join(lede.split("\n")))
    return make_draft(
        source,
        title=title,
        paragraphs=paragraphs,
        url=text_field(item.get("url") or item.get("link")),
        author=text_field(item.get("author")),
        image=text_field(item.get("image")),
        guid=text_field(item.get("guid") or item.get("id")),
        published=item.get("published") or item.get("published_at") or item.get("date"),
    )
