"""Rendering a digest: Jinja2 and premailer once per digest, cut to fit Gmail's clip.

The stored HTML and text keep the reader-field markers (digests/fields.py) where a
reader's own values go, so sending one message is a join of prepared bytes
(mail/fastpath.py), never a render.

The layout: the first story (the editor's first) leads, larger and with its image;
the others follow grouped by section, sections in the order they first appear in the
editor's order (the lead's counts, so a lead on "Ukraine" puts that section first),
stories without a section right after the lead under no heading (they are the
editor's unfiled top stories, not an "Other" bin at the bottom). Numbers run through
the whole digest in the order shown, in both parts.

The templates are the list's own when it has a folder (digests/templates.py), checked
on every render: a list's template that drops the unsubscribe link or the postal
address, or cannot fit the budget even with every story cut, is refused (InvalidInput)
rather than sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import object_session

from newsletter.config import Settings
from newsletter.digests import fields, templates
from newsletter.digests.entries import story_entry
from newsletter.mail.render import inline_css
from newsletter.media.entry import image_entry
from newsletter.models import MailingList, Media, Story

KIND = "digest"

LANG = "en"  # <html lang>; a list's own templates may set their own


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
    language: str | None = None  # None: the default language (DigestVariant.language)

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


def _sections(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stories after the lead, grouped: unfiled ones first under no heading, then
    each section in the order it first appears (the lead included), stories in the
    editor's order within it. `start` is the number of the group's first story."""
    order: dict[str | None, list[dict[str, Any]]] = {None: []}
    for entry in entries:
        order.setdefault(entry.get("section") or None, [])
    for entry in entries[1:]:
        order[entry.get("section") or None].append(entry)
    groups: list[dict[str, Any]] = []
    number = 2
    for name, stories in order.items():
        if stories:
            groups.append({"name": name, "stories": stories, "start": number})
            number += len(stories)
    return groups


def _context(
    settings: Settings,
    mailing_list: MailingList,
    entries: list[dict[str, Any]],
    *,
    now: datetime,
    view_url: str,
    omitted: int,
    language: str | None = None,
) -> dict[str, Any]:
    first = entries[0]
    teaser = first["paragraphs"][0] if first["paragraphs"] else first["title"]
    return {
        "lang": language or LANG,
        "list_name": mailing_list.name,
        "stories": entries,  # all shown, in the editor's order (older templates)
        "lead": first,
        "sections": _sections(entries),
        "preheader": _shorten(teaser, 140),
        "date_label": _date_label(now, mailing_list.timezone),
        "view_url": view_url,
        "archive_url": view_url,
        "more_count": omitted,
        "email": fields.EMAIL,
        "name": fields.NAME,
        "unsubscribe_url": fields.UNSUBSCRIBE_URL,
        "preferences_url": fields.PREFERENCES_URL,
        "reader": templates.READER,  # reader.attributes.<name>, reader.attr(name, fallback)
        "postal_address": settings.postal_address,
    }


def _levels(stories: Sequence[Story]) -> int:
    """Shrink levels: 0 = all full; 1..n = that many cut from the bottom; then drop."""
    return 2 * min(len(stories), MAX_STORIES) - 1


def _entries_at(
    stories: Sequence[Story],
    level: int,
    base_url: str,
    images: Sequence[dict[str, Any] | None],
) -> tuple[list[dict[str, Any]], int]:
    """The mail's entries at a shrink level, and how many stories only the archive lists."""
    n = min(len(stories), MAX_STORIES)
    short = min(level, n)
    keep = n - max(0, level - n)
    entries = []
    for i, story in enumerate(stories[:keep]):
        entry = story_entry(story, base_url, short=i >= n - short)
        entry["image"] = images[i]
        entries.append(entry)
    return entries, len(stories) - keep


def _images(settings: Settings, stories: Sequence[Story]) -> list[dict[str, Any] | None]:
    """Each shown story's image entry. The Media rows are read in one query first, so
    the stories' many-to-one loads find them in the session instead of one query each."""
    shown = stories[:MAX_STORIES]
    ids = {s.image_media_id for s in shown if s.image_media_id is not None}
    session = object_session(shown[0])
    loaded = []
    if ids and session is not None:
        loaded = list(session.scalars(select(Media).where(Media.id.in_(ids))))
    images = [image_entry(settings, s) for s in shown]
    del loaded  # kept referenced until the stories' loads found them
    return images


def render_digest(
    settings: Settings,
    mailing_list: MailingList,
    stories: Sequence[Story],
    *,
    now: datetime,
    digest_id: int | None = None,
    budget: int = HTML_BUDGET,
    language: str | None = None,
) -> Composition:
    """Render and inline once, cutting stories to lede + link until the HTML fits the budget.

    Jinja renders are cheap and premailer is not, so the level is found by bisecting on
    the raw size scaled by the measured inlining growth, then checked after inlining.
    Raises TemplateRefused (InvalidInput) when the list's templates fail or make a
    digest without the unsubscribe link or postal address, or too big at every level.
    `language` (not the default one) renders with the folder's templates for it
    (templates.language_folder) and says so in <html lang>.
    """
    if not stories:
        raise ValueError("a digest needs at least one story")
    folder = mailing_list.template_dir or None
    templates.check_still_there(folder)
    env = templates.digest_env(folder, language)
    subject_t = templates.load(env, "subject.txt", folder)
    html_t = templates.load(env, "body.html", folder)
    text_t = templates.load(env, "body.txt", folder)
    images = _images(settings, stories)
    view_url = (
        f"{settings.base_url}/archive/{digest_id}" if digest_id else f"{settings.base_url}/archive"
    )

    contexts: dict[int, dict[str, Any]] = {}

    def context(level: int) -> dict[str, Any]:
        if level in contexts:
            return contexts[level]
        entries, omitted = _entries_at(stories, level, settings.base_url, images)
        ctx = _context(
            settings,
            mailing_list,
            entries,
            now=now,
            view_url=view_url,
            omitted=omitted,
            language=language,
        )
        ctx["subject"] = " ".join(templates.render(subject_t, ctx, folder).split())
        if "%%NL_" in ctx["subject"]:
            # One subject for every reader (the header is built once per digest).
            raise templates.TemplateRefused(
                f"{templates.where(folder)}subject.txt: the subject is the same for every "
                "reader and cannot show a reader's name, address or attributes"
            )
        ctx["omitted"] = omitted
        ctx["shortened"] = sum(1 for e in entries if e["shortened"])
        contexts[level] = ctx
        return ctx

    def raw_html(level: int) -> str:
        return templates.render(html_t, context(level), folder)

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
    text = templates.render(text_t, ctx, folder)
    templates.check_output(
        html, text, postal_address=settings.postal_address, budget=budget, folder=folder
    )
    return Composition(
        subject=ctx["subject"][:500],
        html=html,
        text=text,
        story_ids=[s.id for s in stories],
        shortened=ctx["shortened"],
        omitted=ctx["omitted"],
        language=language,
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


def _sample_stories() -> list[Story]:
    """Stories to try a list's templates on (never stored): a lead with an image and a
    section, one more in that section with an image, one with a byline and no section."""
    lede = "The council agreed the budget after a night of debate, with one vote to spare."
    body = "The mayor said the vote was close.\n\nThe budget takes effect in January."
    image = Media(
        id=0, key="sample", content_type="image/jpeg", width=600, height=338, bytes=0,
        source_hash="", source_url="",
    )  # fmt: skip
    stories = [
        Story(id=0, slug="sample-lead", title="Council agrees the budget", lede=lede,
              body=body, section="City", author="A Reporter", image_media=image,
              image_alt="The council chamber", image_credit="A Photographer"),
        Story(id=0, slug="sample-second", title="Harbour reopens after the storm", lede=lede,
              body=body, section="City", image_media=image, image_alt="The harbour"),
        Story(id=0, slug="sample-third", title="Schools open late on Monday", lede=lede,
              body=body, author="Another Reporter"),
    ]  # fmt: skip
    return stories


def check_template_dir(
    settings: Settings, mailing_list: MailingList, folder: str, *, now: datetime
) -> str:
    """The folder's absolute path if the list's digests can be made with its templates;
    else TemplateRefused (InvalidInput) with the file, line and reason in one line.

    The templates render a sample digest (never stored) for `mailing_list` as if the
    folder were set; nothing is changed.
    """
    path = templates.check_folder(folder)
    trial = MailingList(
        slug=mailing_list.slug,
        name=mailing_list.name,
        timezone=mailing_list.timezone or "UTC",
        template_dir=path,
    )
    render_digest(settings, trial, _sample_stories(), now=now)
    for language in settings.language_codes[1:]:
        if templates.language_folder(path, language):
            render_digest(settings, trial, _sample_stories(), now=now, language=language)
    return path
