"""Plain text, like a scraped page: the first line is the headline, the next paragraph the
lede; site furniture above the story (sign-up banners) is dropped.

The body's HTML is built from the paragraphs, every character escaped (stories/rich.py):
a "<b>" in the text is shown as typed. A paragraph written as "- item" or "1. item"
lines stays a list.
"""

from __future__ import annotations

import re

from newsletter.stories import rich
from newsletter.stories.drafts import StoryDraft, StoryInputError, make_draft, split_blocks

MAX_HEADLINE_GUESS = 200  # a plain-text paragraph longer than this is prose, not a headline


# Site furniture that scrapers pick up above a story: newsletter sign-up banners and
# the like. Only leading paragraphs are checked, so a story may still say "subscribe".
BANNER = re.compile(
    r"\b(sign\s*-?\s*up|subscribe|newsletter|delivered (straight )?to (you|your inbox)"
    r"|get the latest|advertisement|skip to (main )?content|share this|follow us)\b",
    re.IGNORECASE,
)


def _looks_like_headline(paragraph: str) -> bool:
    """Headlines are short and do not end like a sentence of prose."""
    return len(paragraph) <= MAX_HEADLINE_GUESS and not paragraph.endswith((".", ",", ";", ":"))


def parse_plain(text: str, source: str) -> StoryDraft:
    """A scraped page: leading site banners dropped, then headline, lede and paragraphs."""
    blocks = split_blocks(text)
    while blocks and BANNER.search(blocks[0]) and len(blocks[0]) <= 200:
        blocks.pop(0)
    first = blocks[0].replace("\n", " ") if blocks else ""
    if not first or not _looks_like_headline(first):
        raise StoryInputError(
            source,
            "has no headline: the first paragraph should be a short title line, "
            "followed by a blank line and the story",
        )
    body = rich.from_text(blocks[1:])
    return make_draft(source, title=first, paragraphs=body.paragraphs, body_html=body.html)
