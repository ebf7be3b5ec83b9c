"""Plain text, like a scraped page: the first line is the headline, the next paragraph the
lede; site furniture above the story (sign-up banners) is dropped.
"""

from __future__ import annotations

import re

from newsletter.stories.drafts import StoryDraft, StoryInputError, make_draft, split_paragraphs

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
