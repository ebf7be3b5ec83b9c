"""The digest composer: choose a list's new stories, render once, personalise cheaply.

Rendering and CSS inlining happen once per digest; the stored HTML and text keep the
markers of newsletter/placeholders.py where a reader's own values go, so sending one
message is a substitution of a few fields, never a render.

"Since its previous digest" means: stories of the list (or of no list, meant for all)
published after the cut-off of the newest digest that went beyond a draft (anything
but draft or cancelled), and not already in it. A digest's cut-off is its created_at,
the moment it was composed, so drafts and previews never use stories up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from newsletter import placeholders
from newsletter.config import Settings
from newsletter.mail.render import inline_css
from newsletter.models import Digest, DigestStatus, MailingList, Story, utcnow
from newsletter.stories import story_paragraphs
from newsletter.templating import email_env

KIND = "digest"
MAX_STORIES = 50  # shown in the mail; the rest are listed on the digest's archive page
MAX_SELECTED = 500
MAIL_PARAGRAPHS = 3  # the lede and two more; the story page has the rest
SHORT_LEDE = 500  # characters of a lede kept when a story is cut to lede + link
GMAIL_CLIP = 102 * 1024  # Gmail hides everything past this many bytes of HTML
# Head-room under the clip for per-recipient values and quoted-printable growth.
HTML_BUDGET = 90 * 1024
# Digests that count as sent: they used up their stories. Drafts and cancelled do not.
NOT_CONSUMING = (DigestStatus.draft, DigestStatus.cancelled)


@dataclass(frozen=True)
class Composition:
    """A rendered digest, ready to store: inlined HTML and text with placeholders."""

    subject: str
    html: str
    text: str
    story_ids: list[int]
    shortened: int = 0  # stories cut to lede + link to stay under the clip limit
    omitted: int = 0  # stories only on the archive page (too many, or too big even cut)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode())

    @property
    def text_bytes(self) -> int:
        return len(self.text.encode())


# Choosing stories -----------------------------------------------------------------------


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


# Rendering ------------------------------------------------------------------------------


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


def story_entry(story: Story, base_url: str, *, short: bool) -> dict[str, Any]:
    """What the templates show of a story: full (a few paragraphs) or lede + link."""
    paragraphs = story_paragraphs(story)
    shown = [_shorten(paragraphs[0], SHORT_LEDE)] if short and paragraphs else paragraphs
    return {
        "title": story.title,
        "byline": f"By {story.author}" if story.author else "",
        "image": story.image,
        "paragraphs": shown[:MAIL_PARAGRAPHS],
        "page_url": f"{base_url}/stories/{story.slug}",
        "source_url": story.url,
        "shortened": short,
    }


def _date_label(now: datetime, timezone: str) -> str:
    try:
        local = now.astimezone(ZoneInfo(timezone))
    except (KeyError, ValueError):
        local = now
    return f"{local:%A}, {local.day} {local:%B %Y}"


def _context(
    settings: Settings,
    mailing_list: MailingList,
    entries: list[dict[str, Any]],
    *,
    now: datetime,
    view_url: str,
    omitted: int,
) -> dict[str, Any]:
    first = entries[0]
    teaser = first["paragraphs"][0] if first["paragraphs"] else first["title"]
    return {
        "list_name": mailing_list.name,
        "stories": entries,
        "preheader": _shorten(teaser, 140),
        "date_label": _date_label(now, mailing_list.timezone),
        "view_url": view_url,
        "archive_url": view_url,
        "more_count": omitted,
        "email": placeholders.EMAIL,
        "name": placeholders.NAME,
        "unsubscribe_url": placeholders.UNSUBSCRIBE_URL,
        "postal_address": settings.postal_address,
    }


def _levels(stories: Sequence[Story]) -> int:
    """Shrink levels: 0 = all full; 1..n = that many cut from the bottom; then drop."""
    return 2 * min(len(stories), MAX_STORIES) - 1


def _entries_at(
    stories: Sequence[Story], level: int, base_url: str
) -> tuple[list[dict[str, Any]], int]:
    """The mail's entries at a shrink level, and how many stories only the archive lists."""
    n = min(len(stories), MAX_STORIES)
    short = min(level, n)
    keep = n - max(0, level - n)
    entries = [story_entry(s, base_url, short=i >= n - short) for i, s in enumerate(stories[:keep])]
    return entries, len(stories) - keep


def render_digest(
    settings: Settings,
    mailing_list: MailingList,
    stories: Sequence[Story],
    *,
    now: datetime,
    digest_id: int | None = None,
    budget: int = HTML_BUDGET,
) -> Composition:
    """Render and inline once, cutting stories to lede + link until the HTML fits the budget.

    Jinja renders are cheap and premailer is not, so the level is found by bisecting on
    the raw size scaled by the measured inlining growth, then checked after inlining.
    """
    if not stories:
        raise ValueError("a digest needs at least one story")
    env = email_env()
    view_url = (
        f"{settings.base_url}/archive/{digest_id}" if digest_id else f"{settings.base_url}/archive"
    )

    def context(level: int) -> dict[str, Any]:
        entries, omitted = _entries_at(stories, level, settings.base_url)
        ctx = _context(settings, mailing_list, entries, now=now, view_url=view_url, omitted=omitted)
        ctx["subject"] = " ".join(env.get_template(f"{KIND}/subject.txt").render(ctx).split())
        ctx["omitted"] = omitted
        ctx["shortened"] = sum(1 for e in entries if e["shortened"])
        return ctx

    def raw_html(level: int) -> str:
        return env.get_template(f"{KIND}/body.html").render(context(level))

    raw = raw_html(0)
    html = inline_css(raw)
    level = 0
    if len(html.encode()) > budget:
        growth = len(html.encode()) / len(raw.encode())
        level = _bisect(_levels(stories), lambda lv: len(raw_html(lv).encode()) * growth <= budget)
        html = inline_css(raw_html(level))
        while len(html.encode()) > budget and level < _levels(stories):
            level += 1
            html = inline_css(raw_html(level))
    ctx = context(level)
    text = env.get_template(f"{KIND}/body.txt").render(ctx)
    return Composition(
        subject=ctx["subject"][:500],
        html=html,
        text=text,
        story_ids=[s.id for s in stories],
        shortened=ctx["shortened"],
        omitted=ctx["omitted"],
    )


def _bisect(top: int, fits: Callable[[int], bool]) -> int:
    """The smallest level in [1, top] that fits (top if none does)."""
    low, high = 1, top
    while low < high:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid + 1
    return low


# Storing --------------------------------------------------------------------------------


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


def digest_record(digest: Digest, base_url: str) -> dict[str, Any]:
    return {
        "id": digest.id,
        "list": digest.mailing_list.slug if digest.mailing_list else None,
        "status": digest.status,
        "subject": digest.subject,
        "story_ids": list(digest.story_ids or []),
        "html_bytes": len(digest.html.encode()),
        "text_bytes": len(digest.text.encode()),
        "created_at": digest.created_at.isoformat(),
        "view_url": f"{base_url}/archive/{digest.id}",
    }


# Personalising --------------------------------------------------------------------------

_MARKER = re.compile("(" + "|".join(re.escape(m) for m in placeholders.ALL) + ")")


@lru_cache(maxsize=16)
def _split(template: str) -> tuple[str, ...]:
    """Literal text and markers, alternating (markers at odd positions), split once."""
    return tuple(_MARKER.split(template))


def _join(parts: tuple[str, ...], values: Mapping[str, str]) -> str:
    chunks = list(parts)
    for i in range(1, len(chunks), 2):
        chunks[i] = values.get(chunks[i], "")
    return "".join(chunks)


def personalise(digest_html: str, digest_text: str, values: Mapping[str, str]) -> tuple[str, str]:
    """Both parts for one reader: values keyed by placeholders.NAME/EMAIL/UNSUBSCRIBE_URL.

    Same result as placeholders.fill, but each template is split at its markers once and
    cached, so one reader costs a join of both parts, not a scan of each per marker.
    """
    escaped = {k: escape(v, quote=True) for k, v in values.items()}
    return _join(_split(digest_html), escaped), _join(_split(digest_text), values)


# The archive ----------------------------------------------------------------------------


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
    ids = list(digest.story_ids or [])
    found = (
        {s.id: s for s in session.scalars(select(Story).where(Story.id.in_(ids)))} if ids else {}
    )
    return digest, [found[i] for i in ids if i in found]
