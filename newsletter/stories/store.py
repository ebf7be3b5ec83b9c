"""The story store: slugs that never change, re-imports recognised, records for the faces."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from newsletter.models import MailingList, Story, utcnow
from newsletter.stories import rich
from newsletter.stories.drafts import StoryDraft
from newsletter.stories.parse import parse_story_file
from newsletter.subscriptions.lists import find_list

MAX_SLUG = 80


@dataclass
class StoreReport:
    added: list[Story] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sources already stored


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
    # The editor's order: after every story stored before, in the order given.
    position = (session.scalar(select(func.max(Story.position))) or 0) + 1
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
            image_alt=draft.image_alt,
            image_credit=draft.image_credit,
            section=draft.section,
            body_html=draft.body_html,
            position=position,
            guid=draft.identity(),
            list_id=mailing_list.id if mailing_list else None,
            published_at=draft.published_at or now,
            created_at=now,
        )
        position += 1
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


def story_paragraphs(story: Story) -> list[str]:
    """The lede and every paragraph after it, in order."""
    rest = [p for p in story.body.split("\n\n") if p] if story.body else []
    return [story.lede, *rest] if story.lede else rest


def reading_paragraphs(story: Story) -> list[str]:
    """The story as a reader reads it in plain text: lists as lists, links without their
    reference numbers (a teaser, a count), from the rich body when there is one."""
    if story.body_html:
        return rich.blocks_text(rich.parse_blocks(story.body_html), references=False)
    return story_paragraphs(story)


def story_record(story: Story, base_url: str, list_slug: str | None = None) -> dict[str, Any]:
    return {
        "id": story.id,
        "slug": story.slug,
        "title": story.title,
        "lede": story.lede,
        "paragraphs": len(reading_paragraphs(story)),
        "url": story.url,
        "author": story.author,
        "image": story.image,
        "image_alt": story.image_alt,
        "image_credit": story.image_credit,
        "section": story.section,
        "position": story.position,
        "list": list_slug,
        "published_at": story.published_at.isoformat(),
        "page_url": f"{base_url}/stories/{story.slug}",
    }


def story_records(
    session: Session, base_url: str, list_slug: str | None = None
) -> list[dict[str, Any]]:
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
