"""What a digest shows of one story: the entry its templates render.

An entry is a dict (the templates' contract; templates/email/digest/ and a list's own
templates read it):

- title, byline ("By …" or ""), section (or None), page_url, source_url (or None)
- paragraphs: the plain-text paragraphs shown (kept for older templates)
- html: the shown part of the body as sanitised HTML (stories/rich.py), safe to insert
  as is; text: the same for the text part (lists as lists, links as numbered references)
- image: None, or {"src", "src2x", "width", "height", "alt", "credit"} of the lead image
  resized for e-mail (newsletter/media/)
- shortened: cut to lede + link to stay under the clip budget
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from newsletter.models import Story
from newsletter.stories.store import story_paragraphs

MAIL_PARAGRAPHS = 3  # the lede and two more; the story page has the rest


SHORT_LEDE = 500  # characters of a lede kept when a story is cut to lede + link


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


def story_entry(story: Story, base_url: str, *, short: bool) -> dict[str, Any]:
    """What the templates show of a story: full (a few paragraphs) or lede + link."""
    paragraphs = story_paragraphs(story)
    shown = [_shorten(paragraphs[0], SHORT_LEDE)] if short and paragraphs else paragraphs
    shown = shown[:MAIL_PARAGRAPHS]
    return {
        "title": story.title,
        "byline": f"By {story.author}" if story.author else "",
        "section": story.section,
        "image": None,
        "paragraphs": shown,
        "html": Markup("\n").join(Markup("<p>{}</p>").format(escape(p)) for p in shown),
        "text": "\n\n".join(shown),
        "page_url": f"{base_url}/stories/{story.slug}",
        "source_url": story.url,
        "shortened": short,
    }
