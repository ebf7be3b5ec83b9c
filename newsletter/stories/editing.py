"""Correcting a story and taking one back: the console's edit and delete.

* An edit keeps the slug (links already sent keep working) and re-renders every draft
  that has the story; digests that went out keep the bytes they were sent with, and
  the story page shows the corrected text.
* The lede and body are written as Markdown (raw HTML shown as typed, stories/markdown.py);
  when neither changed, the stored rich body is kept as it was.
* A story that went out in a digest (any digest that is not a draft) cannot be deleted:
  readers have its link in their mailbox and the archive shows it. A story only in
  drafts is taken out of them (a draft left with no story is deleted with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.digests.archive import whole_story_ids
from newsletter.effects import Done
from newsletter.errors import Conflict, NotFound
from newsletter.models import Digest, DigestStatus, Story
from newsletter.stories.drafts import StoryInputError, make_draft
from newsletter.stories.markdown import markdown_body
from newsletter.stories.store import story_record


@dataclass(frozen=True)
class StoryEdit:
    """What the edit form sends; empty optional fields clear them."""

    title: str
    lede: str
    body: str
    section: str = ""
    image_alt: str = ""
    image_credit: str = ""


def find_story(session: Session, story_id: int) -> Story:
    story = session.get(Story, story_id) if 1 <= story_id <= 2**31 - 1 else None
    if story is None:
        raise NotFound("story", f"There is no story {story_id}.")
    return story


def digests_with(session: Session, story: Story) -> list[Digest]:
    """The digests that have the story (new or carried). Only digests composed after it
    was stored can, so the scan is bounded by its age."""
    query = select(Digest).where(Digest.created_at >= story.created_at).order_by(Digest.id)
    return [d for d in session.scalars(query) if story.id in whole_story_ids(d)]


def _rerender_drafts(session: Session, settings: Settings, story: Story, *, drop: bool) -> None:
    from newsletter.digests.editing import candidates, rerender

    for digest in digests_with(session, story):
        if digest.status != DigestStatus.draft:
            continue
        keep = [s for s in candidates(session, digest) if s.id in (digest.story_ids or [])]
        if drop:
            keep = [s for s in keep if s.id != story.id]
        if keep:
            rerender(session, settings, digest, keep)
        else:
            session.delete(digest)
    session.flush()


@audit.audited("stories.edit", lambda story_id, edit: f"story {story_id}")
def edit_story(
    session: Session, settings: Settings, story_id: int, edit: StoryEdit
) -> Done[dict[str, Any]]:
    """Change the words of a story; drafts that have it are rendered again."""
    story = find_story(session, story_id)
    source = f"story {story_id}"
    body_changed = edit.lede.strip() != story.lede.strip() or _norm(edit.body) != _norm(story.body)
    if body_changed:
        _, rich_body = markdown_body(edit.body, take_title=False)
        rich_body = rich_body.with_lede(edit.lede)
        paragraphs, body_html = rich_body.paragraphs, rich_body.html
    else:
        rest = [p for p in story.body.split("\n\n") if p]
        paragraphs, body_html = [story.lede, *rest], story.body_html
    draft = make_draft(
        source,
        title=edit.title,
        paragraphs=paragraphs,
        body_html=body_html,
        section=edit.section.strip() or None,
        image_alt=edit.image_alt.strip() or None,
        image_credit=edit.image_credit.strip() or None,
    )
    if not draft.lede and not draft.paragraphs:
        raise StoryInputError(source, "has no text: write a lede or a body")
    story.title = draft.title
    if body_changed:
        story.lede = draft.lede
        story.body = "\n\n".join(draft.paragraphs)
        story.body_html = draft.body_html
    story.section = draft.section
    story.image_alt = draft.image_alt
    story.image_credit = draft.image_credit
    session.flush()
    _rerender_drafts(session, settings, story, drop=False)
    return Done(story_record(story, settings.base_url))


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").strip().split("\n"))


@audit.audited("stories.delete", lambda story_id: f"story {story_id}")
def delete_story(session: Session, settings: Settings, story_id: int) -> Done[dict[str, Any]]:
    """Delete a story no reader has been sent; drafts that have it lose it."""
    story = find_story(session, story_id)
    sent = [d for d in digests_with(session, story) if d.status != DigestStatus.draft]
    if sent:
        raise Conflict(
            "story",
            f"story {story_id} is in digest {sent[0].id} ({sent[0].status}): readers have "
            "its link, so it stays; edit it instead",
        )
    record = story_record(story, settings.base_url)
    _rerender_drafts(session, settings, story, drop=True)
    session.delete(story)
    session.flush()
    return Done({**record, "deleted": True})
