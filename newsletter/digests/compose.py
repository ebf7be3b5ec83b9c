"""Composing a digest: choose a list's new stories, render once, store the draft.

"Since its previous digest" means: stories of the list (or of no list, meant for all)
published after the cut-off of the newest digest that went beyond a draft (anything
but draft or cancelled), and not already in it. A digest's cut-off is its created_at,
the moment it was composed, so drafts and previews never use stories up.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.digests.render import Composition, render_digest
from newsletter.models import Digest, DigestStatus, MailingList, Story, utcnow

MAX_SELECTED = 500


# Digests that count as sent: they used up their stories. Drafts and cancelled do not.
NOT_CONSUMING = (DigestStatus.draft, DigestStatus.cancelled)


def previous_digest(session: Session, mailing_list: MailingList) -> Digest | None:
    """The newest digest of the list that consumed its stories."""
    return session.scalar(
        select(Digest)
        .where(Digest.list_id == mailing_list.id, Digest.status.not_in(NOT_CONSUMING))
        .order_by(Digest.created_at.desc(), Digest.id.desc())
        .limit(1)
    )


def select_stories(
    session: Session, mailing_list: MailingList, now: datetime, limit: int = MAX_SELECTED
) -> list[Story]:
    """New stories for the list, newest first, at most `limit`."""
    query = select(Story).where(
        or_(Story.list_id == mailing_list.id, Story.list_id.is_(None)),
        Story.published_at <= now,
    )
    previous = previous_digest(session, mailing_list)
    if previous is not None:
        query = query.where(Story.published_at > previous.created_at)
        if previous.story_ids:
            query = query.where(Story.id.not_in(previous.story_ids))
    query = query.order_by(Story.published_at.desc(), Story.id.desc()).limit(limit)
    return list(session.scalars(query))


def compose_digest(
    session: Session,
    settings: Settings,
    mailing_list: MailingList,
    *,
    now: datetime | None = None,
    period_key: str | None = None,
) -> Digest | None:
    """A new draft Digest of the list's stories since its previous digest, or None if none.

    With a period_key that the list already has a digest for, that digest is returned
    as it is (whatever its status), so a scheduler that runs twice composes once.
    Flushes, does not commit: the caller owns the transaction.
    """
    now = now or utcnow()
    if period_key is not None:
        existing = session.scalar(
            select(Digest).where(Digest.list_id == mailing_list.id, Digest.period_key == period_key)
        )
        if existing is not None:
            return existing
    stories = select_stories(session, mailing_list, now)
    if not stories:
        return None
    digest = Digest(
        list_id=mailing_list.id,
        subject="",
        status=DigestStatus.draft,
        period_key=period_key,
        created_at=now,  # the cut-off: stories published up to now are in
        story_ids=[],
    )
    session.add(digest)
    session.flush()
    composed = render_digest(settings, mailing_list, stories, now=now, digest_id=digest.id)
    digest.subject = composed.subject
    digest.html = composed.html
    digest.text = composed.text
    digest.story_ids = composed.story_ids
    session.flush()
    return digest


def preview_digest(
    session: Session, settings: Settings, mailing_list: MailingList, *, now: datetime | None = None
) -> Composition | None:
    """What the next digest would be, rendered but not stored: uses no stories up."""
    now = now or utcnow()
    stories = select_stories(session, mailing_list, now)
    return render_digest(settings, mailing_list, stories, now=now) if stories else None
