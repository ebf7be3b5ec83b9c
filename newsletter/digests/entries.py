"""What a digest shows of one story: the entry its templates render.

An entry is a dict (the templates' contract; templates/email/digest/ and a list's own
templates read it):

- title, byline ("By …" or ""), section (or None), page_url, source_url (or None)
- paragraphs: the plain-text paragraphs shown (kept for older templates): the excerpt's
  blocks as text, a list as "- item" lines, a link as its words (no reference numbers)
- html: the shown part of the body as sanitised HTML (stories/rich.py), safe to insert
  as is; text: the same for the text part (lists as lists, links as numbered references
  with their "[1] https://…" block after the excerpt)
- image: None, or {"src", "src2x", "width", "height", "alt", "credit"} of the lead image
  resized for e-mail (newsletter/media/)
- shortened: cut to lede + link to stay under the clip budget

The excerpt is whole blocks of the body (stories/rich.py): a list is one block and is
never cut in the middle. It never ends on a block that leads into what follows, a
heading or words ending in a colon ("Residents were asked to:"): the list after such a
colon comes with it, any other such block is left for the story page. A story cut to
lede + link shows its lede up to the last sentence that fits in SHORT_LEDE characters.
A story stored before bodies were rich (body_html == "") is excerpted from its text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from markupsafe import Markup

from newsletter.models import Story
from newsletter.stories import rich
from newsletter.stories.rich import Element
from newsletter.stories.store import story_paragraphs

MAIL_PARAGRAPHS = 3  # blocks: the lede and two more; the story page has the rest


SHORT_LEDE = 500  # characters of a lede kept when a story is cut to lede + link

LEADS_ON = frozenset({"h3", "h4", "hr"})  # blocks that only make sense with what follows


def _ends_on_colon(block: Element) -> bool:
    return rich.block_text(block).rstrip().endswith(":")


def _leads_on(block: Element) -> bool:
    return block.tag in LEADS_ON or _ends_on_colon(block)


def _excerpt(blocks: list[Element], count: int) -> list[Element]:
    """The first `count` blocks, never ending on a heading or a colon: a colon's list
    comes along (however many blocks that makes), anything else that leads on is left."""
    shown, rest = blocks[:count], blocks[count:]
    while shown and _leads_on(shown[-1]):
        last = shown[-1]
        if rest and rest[0].tag in rich.LISTS and last.tag not in LEADS_ON:
            shown.append(rest[0])
            break
        rest.insert(0, shown.pop())
    if not shown and blocks:  # only a lead-in: say as much of it as ends a sentence
        return [_up_to_colon(blocks[0])]
    return shown


def _up_to_colon(block: Element) -> Element:
    """A block ending in a colon with nothing to show after it: its last whole sentence
    before the colon, or its words with the colon made an ellipsis."""
    text = rich.flat_text(block)
    end = rich.sentence_end(text, len(text.rstrip().rstrip(":")))
    if end is not None:
        return rich.truncate(block, end)
    cut = rich.truncate(block, len(text.rstrip().rstrip(":").rstrip()))
    cut.children.append("…")
    return cut


def _short_lede(blocks: list[Element]) -> list[Element]:
    """The lede (the first block with words, not a heading) cut at a sentence end within
    SHORT_LEDE characters; a lede leading into a list keeps the list."""
    ledes = (i for i, b in enumerate(blocks) if b.tag not in LEADS_ON and rich.block_text(b))
    at = next(ledes, None)
    if at is None:
        return blocks[:1]
    lede = blocks[at]
    if lede.tag in rich.LISTS or lede.tag == "figure":
        return [lede]
    text = rich.flat_text(lede)
    if len(text) > SHORT_LEDE:
        end = rich.sentence_end(text, SHORT_LEDE)
        if end is not None:
            return [rich.truncate(lede, end)]
        words = text[:SHORT_LEDE].rsplit(" ", 1)[0].rstrip(",;:.")
        cut = rich.truncate(lede, len(words))
        cut.children.append("…")
        return [cut]
    if _ends_on_colon(lede):
        follows = blocks[at + 1 : at + 2]
        if follows and follows[0].tag in rich.LISTS:
            return [lede, follows[0]]
        return [_up_to_colon(lede)]
    return [lede]


@lru_cache(maxsize=1024)
def _shown(body_html: str, paragraphs: tuple[str, ...], short: bool) -> tuple[str, str, list[str]]:
    """The excerpt's HTML, text and text paragraphs. Cached: a digest's render tries
    several shrink levels, each asking again for the same stories."""
    if body_html:
        blocks = rich.parse_blocks(body_html)
    else:
        blocks = rich.from_paragraphs(paragraphs).blocks
    shown = _short_lede(blocks) if short else _excerpt(blocks, MAIL_PARAGRAPHS)
    text = "\n\n".join(rich.blocks_text(shown))
    return rich.blocks_html(shown), text, rich.blocks_text(shown, references=False)


def story_entry(story: Story, base_url: str, *, short: bool) -> dict[str, Any]:
    """What the templates show of a story: full (a few blocks) or lede + link."""
    old = () if story.body_html else tuple(story_paragraphs(story))
    html, text, paragraphs = _shown(story.body_html or "", old, short)
    return {
        "title": story.title,
        "byline": f"By {story.author}" if story.author else "",
        "section": story.section,
        "image": None,
        "paragraphs": list(paragraphs),
        "html": Markup(html),  # sanitised by blocks_html
        "text": text,
        "page_url": f"{base_url}/stories/{story.slug}",
        "source_url": story.url,
        "shortened": short,
    }
