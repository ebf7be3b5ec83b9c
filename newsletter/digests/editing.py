"""A draft arranged by hand: which of the list's new stories it has, in which order.

The stories a draft may have are the ones a compose would take now (compose.py's
select_stories): the list's new stories since its previous digest. Arranging renders the
draft again, as composing would, and moves its cut-off (created_at) to now: a story
added after the draft was composed may be chosen too, and a story left out is not
offered to a later digest, which starts after this one (the page says so). Stories a
cancelled send still owes some readers (digests/carry.py) stay, after the chosen ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.digests import carry
from newsletter.digests.archive import digest_record
from newsletter.digests.compose import select_stories, write_content
from newsletter.effects import Done
from newsletter.errors import Conflict, InvalidInput, NotFound
from newsletter.models import Digest, DigestStatus, MailingList, Story, utcnow


def draft_of(session: Session, digest_id: int) -> Digest:
    digest = session.get(Digest, digest_id) if 1 <= digest_id <= 2**31 - 1 else None
    if digest is None:
        raise NotFound("digest", f"There is no digest {digest_id}.")
    return digest


def candidates(session: Session, digest: Digest) -> list[Story]:
    """The stories this draft may have: its own (in its order), then the list's other
    new stories in the editor's order."""
    mlist = session.get(MailingList, digest.list_id)
    assert mlist is not None
    new = {s.id: s for s in select_stories(session, mlist, utcnow())}
    mine = list(digest.story_ids or [])
    missing = [i for i in mine if i not in new]
    if missing:  # chosen before and published since; rare
        new.update({s.id: s for s in session.scalars(select(Story).where(Story.id.in_(missing)))})
    ordered = [new[i] for i in mine if i in new]
    return ordered + [s for i, s in new.items() if i not in set(mine)]


def rerender(
    session: Session, settings: Settings, digest: Digest, stories: Sequence[Story]
) -> None:
    """Render the draft again with these new stories (and what it carries); flushes."""
    mlist = session.get(MailingList, digest.list_id)
    assert mlist is not None
    now = utcnow()
    owed = carry.owed_stories(session, carry.links_of(digest))
    write_content(session, settings, mlist, digest, stories, owed, now=now)
    digest.created_at = now  # the cut-off: the draft is composed now


@audit.audited("digests.arrange", lambda digest_id, story_ids: f"digest {digest_id}")
def arrange(
    session: Session, settings: Settings, digest_id: int, story_ids: Sequence[int]
) -> Done[dict[str, Any]]:
    """The draft with exactly these stories in this order, rendered again."""
    digest = draft_of(session, digest_id)
    if digest.status != DigestStatus.draft:
        raise Conflict("digest", f"digest {digest_id} is {digest.status}; only a draft changes")
    wanted = list(dict.fromkeys(story_ids))
    if not wanted:
        raise InvalidInput("stories", "choose at least one story")
    offered = {s.id: s for s in candidates(session, digest)}
    unknown = [i for i in wanted if i not in offered]
    if unknown:
        raise InvalidInput("stories", f"story {unknown[0]} is not a new story of this list")
    rerender(session, settings, digest, [offered[i] for i in wanted])
    return Done(digest_record(digest, settings.base_url))


def moved(order: Sequence[int], story_id: int, step: int) -> list[int]:
    """`order` with one story moved up (step -1) or down (+1); at an end it stays."""
    out = list(order)
    if story_id not in out:
        return out
    at = out.index(story_id)
    to = at + step
    if 0 <= to < len(out):
        out[at], out[to] = out[to], out[at]
    return out
