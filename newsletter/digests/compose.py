"""Composing a digest: choose a list's new stories, render once, store the draft.

"Since its previous digest" means: stories of the list (or of no list, meant for all)
published after the cut-off of the newest digest that used its stories up (anything
but a draft or a send cancelled before it reached anyone), and not already in it. A
digest's cut-off is its created_at, the moment it was composed, so drafts and previews
never use stories up. The stories of sends cancelled part-way come too, for the readers
those sends did not reach (digests/carry.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.digests import carry
from newsletter.digests.render import Composition, render_digest
from newsletter.models import Digest, DigestStatus, DigestVariant, MailingList, Story, utcnow

MAX_SELECTED = 500


def previous_digest(session: Session, mailing_list: MailingList) -> Digest | None:
    """The newest digest of the list that consumed its stories (a weekly round-up
    gathers stories already sent: it consumes none)."""
    return session.scalar(
        select(Digest)
        .where(Digest.list_id == mailing_list.id, Digest.frequency.is_(None), carry.consuming())
        .order_by(Digest.created_at.desc(), Digest.id.desc())
        .limit(1)
    )


def select_stories(
    session: Session, mailing_list: MailingList, now: datetime, limit: int = MAX_SELECTED
) -> list[Story]:
    """New stories for the list in the editor's order, at most `limit`."""
    query = select(Story).where(
        or_(Story.list_id == mailing_list.id, Story.list_id.is_(None)),
        Story.published_at <= now,
    )
    previous = previous_digest(session, mailing_list)
    if previous is not None:
        query = query.where(Story.published_at > previous.created_at)
        if previous.story_ids:
            query = query.where(Story.id.not_in(previous.story_ids))
    # The editor's order (stories added together keep the order given; the first
    # leads), then stories stored before there was an order, newest first.
    query = query.order_by(
        Story.position.asc().nulls_last(), Story.published_at.desc(), Story.id.desc()
    ).limit(limit)
    return list(session.scalars(query))


def compose_digest(
    session: Session,
    settings: Settings,
    mailing_list: MailingList,
    *,
    now: datetime | None = None,
    period_key: str | None = None,
) -> Digest | None:
    """A new draft Digest of the list's stories since its previous digest, and of those
    a send cancelled part-way owes some readers, or None if there are none.

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
    links = carry.chain(session, mailing_list)
    owed = carry.owed_stories(session, links)
    whole = carry.with_owed(stories, owed)
    if not whole:
        return None
    digest = Digest(
        list_id=mailing_list.id,
        subject="",
        status=DigestStatus.draft,
        period_key=period_key,
        created_at=now,  # the cut-off: stories published up to now are in
        story_ids=[],
        carry=[link.record() for link in links],
    )
    session.add(digest)
    session.flush()
    composed = render_digest(settings, mailing_list, whole, now=now, digest_id=digest.id)
    digest.subject = composed.subject
    digest.html = composed.html
    digest.text = composed.text
    digest.story_ids = [s.id for s in stories]  # the new ones; carried ones are in carry
    store_variants(
        session,
        digest.id,
        carry.render_variants(settings, mailing_list, stories, owed, now=now, digest_id=digest.id),
    )
    return digest


def store_variants(session: Session, digest_id: int, variants: dict[int, Composition]) -> None:
    """Store the digest's variants for readers a cancelled send reached
    (carry.render_variants)."""
    for number, variant in variants.items():
        session.add(
            DigestVariant(
                digest_id=digest_id,
                number=number,
                subject=variant.subject,
                html=variant.html,
                text=variant.text,
                story_ids=variant.story_ids,
            )
        )
    session.flush()


def preview_digest(
    session: Session, settings: Settings, mailing_list: MailingList, *, now: datetime | None = None
) -> Composition | None:
    """What the next digest would be, rendered but not stored: uses no stories up. It is
    the whole digest, as a reader not reached by a cancelled send would get it."""
    now = now or utcnow()
    stories = select_stories(session, mailing_list, now)
    owed = carry.owed_stories(session, carry.chain(session, mailing_list))
    whole = carry.with_owed(stories, owed)
    return render_digest(settings, mailing_list, whole, now=now) if whole else None
