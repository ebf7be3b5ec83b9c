"""Composing a digest: choose a list's new stories, render once, store the draft.

"Since its previous digest" means: stories of the list (or of no list, meant for all)
published after the cut-off of the newest digest that used its stories up (anything
but a draft or a send cancelled before it reached anyone), and not already in it. A
digest's cut-off is its created_at, the moment it was composed, so drafts and previews
never use stories up. The stories of sends cancelled part-way come too, for the readers
those sends did not reach (digests/carry.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.digests import carry, templates
from newsletter.digests.render import Composition, render_digest
from newsletter.models import (
    Digest,
    DigestLink,
    DigestStatus,
    DigestVariant,
    MailingList,
    Story,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    utcnow,
)

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
    write_content(session, settings, mailing_list, digest, stories, owed, now=now)
    return digest


def write_content(
    session: Session,
    settings: Settings,
    mailing_list: MailingList,
    digest: Digest,
    new: Sequence[Story],
    owed: Sequence[Sequence[Story]],
    *,
    now: datetime,
) -> None:
    """Render the digest and its variants (the carry ones, each again per other language
    its readers use) and write them, with the tracked links when the list tracks clicks.
    Replaces what the digest had (a draft arranged again); flushes."""
    whole = carry.with_owed(new, owed)
    composed = render_digest(settings, mailing_list, whole, now=now, digest_id=digest.id)
    languages = reader_languages(session, settings, mailing_list)
    variants = carry.render_variants(
        settings, mailing_list, new, owed, now=now, digest_id=digest.id, languages=languages
    )
    session.execute(delete(DigestLink).where(DigestLink.digest_id == digest.id))
    session.execute(delete(DigestVariant).where(DigestVariant.digest_id == digest.id))
    if mailing_list.track_clicks or mailing_list.track_opens:
        composed, variants = _tracked(
            session, settings, mailing_list, digest.id, whole, composed, variants
        )
    digest.subject = composed.subject
    digest.html = composed.html
    digest.text = composed.text
    digest.story_ids = [s.id for s in new]  # the new ones; carried ones are in carry
    store_variants(session, digest.id, variants)


def reader_languages(session: Session, settings: Settings, mailing_list: MailingList) -> list[str]:
    """The languages other than the default one that the list's confirmed readers use
    and its templates say differently (a `<lang>/` subfolder of its folder), in the
    order of NEWSLETTER_LANGUAGES. Empty for nearly every list: one digest for all."""
    folder = mailing_list.template_dir or None
    wanted = [c for c in settings.language_codes[1:] if templates.language_folder(folder, c)]
    found = []
    for code in wanted:
        used = session.scalar(
            select(
                exists().where(
                    Subscription.list_id == mailing_list.id,
                    Subscription.status == SubscriptionStatus.confirmed,
                    Subscriber.id == Subscription.subscriber_id,
                    Subscriber.status == SubscriberStatus.active,
                    Subscriber.language == code,
                )
            )
        )
        if used:
            found.append(code)
    return found


def _tracked(
    session: Session,
    settings: Settings,
    mailing_list: MailingList,
    digest_id: int,
    stories: Sequence[Story],
    composed: Composition,
    variants: dict[int, Composition],
) -> tuple[Composition, dict[int, Composition]]:
    """Every variant's links as tracked redirects (one number per URL across them all),
    the DigestLink rows added, and the open pixel when the list asked for it."""
    from newsletter.engagement import links

    base = settings.base_url
    story_of_url: dict[str, int] = {}
    for story in stories:
        if story.url:
            story_of_url.setdefault(story.url, story.id)
        story_of_url[f"{base}/stories/{story.slug}"] = story.id
    numbering: dict[str, int] = {}

    def track(c: Composition) -> Composition:
        html = c.html
        if mailing_list.track_clicks:
            html, rows = links.track(
                html, digest_id, base, settings.secret, story_of_url.get, numbering=numbering
            )
            session.add_all(rows)
        if mailing_list.track_opens:
            idx = html.lower().rfind("</body>")
            pixel = links.pixel(base)
            html = html[:idx] + pixel + html[idx:] if idx >= 0 else html + pixel
        return replace(c, html=html)

    return track(composed), {n: track(v) for n, v in variants.items()}


def store_variants(session: Session, digest_id: int, variants: dict[int, Composition]) -> None:
    """Store the digest's variants (carry.render_variants): for readers a cancelled send
    reached, and in the other languages its readers use. The one writer of variants."""
    for number, variant in variants.items():
        session.add(
            DigestVariant(
                digest_id=digest_id,
                number=number,
                subject=variant.subject,
                html=variant.html,
                text=variant.text,
                story_ids=variant.story_ids,
                language=variant.language,
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
