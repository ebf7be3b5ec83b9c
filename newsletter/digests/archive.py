"""The archive: digests that went out to readers, so their "view in browser" link works."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Digest, DigestStatus, Story


def digest_record(digest: Digest, base_url: str) -> dict[str, Any]:
    return {
        "id": digest.id,
        "list": digest.mailing_list.slug if digest.mailing_list else None,
        "status": digest.status,
        "subject": digest.subject,
        "story_ids": list(digest.story_ids or []),
        # Stories of sends cancelled part-way, for the readers those did not reach.
        "carried": list(digest.carry or []),
        "html_bytes": len(digest.html.encode()),
        "text_bytes": len(digest.text.encode()),
        "created_at": digest.created_at.isoformat(),
        # Why it is held (a scheduled send the preflight stopped, a paused send).
        "reason": digest.pause_reason,
        "view_url": f"{base_url}/archive/{digest.id}",
    }


def whole_story_ids(digest: Digest) -> list[int]:
    """Its new stories, then those it carries, newest send first."""
    carried = [i for link in reversed(digest.carry or []) for i in link["story_ids"]]
    return [*(digest.story_ids or []), *carried]


def _archived():  # type: ignore[no-untyped-def]
    """Digests that went out to readers, so their "view in browser" link must work."""
    gone_out = Digest.status.in_((DigestStatus.sending, DigestStatus.paused, DigestStatus.sent))
    cancelled_midway = (Digest.status == DigestStatus.cancelled) & Digest.started_at.is_not(None)
    return gone_out | cancelled_midway


def archived_digests(session: Session, limit: int = 200) -> list[Digest]:
    """Newest first, with their lists loaded."""
    query = (
        select(Digest)
        .where(_archived())
        .order_by(Digest.created_at.desc(), Digest.id.desc())
        .limit(limit)
    )
    digests = list(session.scalars(query))
    for d in digests:
        _ = d.mailing_list
    return digests


def archived_digest(session: Session, digest_id: int) -> tuple[Digest, list[Story]] | None:
    """A digest that went out and its stories in the digest's order (deleted ones skipped)."""
    digest = session.scalar(select(Digest).where(Digest.id == digest_id, _archived()))
    if digest is None:
        return None
    _ = digest.mailing_list
    ids = whole_story_ids(digest)
    found = (
        {s.id: s for s in session.scalars(select(Story).where(Story.id.in_(ids)))} if ids else {}
    )
    return digest, [found[i] for i in ids if i in found]
