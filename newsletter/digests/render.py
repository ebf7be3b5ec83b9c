"""Rendering a digest: Jinja2 and premailer once per digest, cut to fit Gmail's clip.

The stored HTML and text keep the reader-field markers (digests/fields.py) where a
reader's own values go, so sending one message is a join of prepared bytes
(mail/fastpath.py), never a render.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.config import Settings
from newsletter.digests import fields
from newsletter.digests.entries import story_entry
from newsletter.mail.render import inline_css
from newsletter.models import MailingList, Story
from newsletter.templating import email_env

KIND = "digest"


MAX_STORIES = 50  # shown in the mail; the rest are listed on the digest's archive page


GMAIL_CLIP = 102 * 1024  # Gmail hides everything past this many bytes of HTML


# Head-room under the clip for per-recipient values and quoted-printable growth.
HTML_BUDGET = 90 * 1024


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


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


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
        "email": fields.EMAIL,
        "name": fields.NAME,
        "unsubscribe_url": fields.UNSUBSCRIBE_URL,
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
