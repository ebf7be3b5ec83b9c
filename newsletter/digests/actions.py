"""Operator actions on digests: compose a draft, preview the next one, list them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.digests import fields
from newsletter.digests.archive import digest_record
from newsletter.digests.compose import compose_digest, preview_digest
from newsletter.digests.render import GMAIL_CLIP
from newsletter.effects import Done
from newsletter.errors import Conflict
from newsletter.models import Digest
from newsletter.subscriptions.lists import find_list

PREVIEW_EMAIL = "reader@example.com"


@dataclass(frozen=True)
class Preview:
    """The next digest as a reader would get it (sample reader values), not stored."""

    list: str
    subject: str
    html: str
    text: str
    stories: int
    shortened: int
    omitted: int

    def record(self) -> dict[str, Any]:
        return {
            "list": self.list,
            "subject": self.subject,
            "stories": self.stories,
            "shortened": self.shortened,
            "omitted": self.omitted,
            "html_bytes": len(self.html.encode()),
            "text_bytes": len(self.text.encode()),
            "gmail_clip_bytes": GMAIL_CLIP,
        }


def compose(
    session: Session, settings: Settings, list_slug: str, period_key: str | None = None
) -> Done[dict[str, Any]]:
    """A draft of the list's next digest; Conflict when it has no new stories."""
    mailing_list = find_list(session, list_slug)
    digest = compose_digest(session, settings, mailing_list, period_key=period_key)
    if digest is None:
        raise Conflict("list", f"List {list_slug!r} has no new stories since its previous digest.")
    return Done(digest_record(digest, settings.base_url))


def preview(session: Session, settings: Settings, list_slug: str) -> Done[Preview | None]:
    """What the next digest would be, with a sample reader's values; uses no stories up."""
    mailing_list = find_list(session, list_slug)
    composed = preview_digest(session, settings, mailing_list)
    if composed is None:
        return Done(None)
    values = {
        fields.NAME: "",
        fields.EMAIL: PREVIEW_EMAIL,
        fields.UNSUBSCRIBE_URL: f"{settings.base_url}/unsubscribe/preview",
    }
    html, text = fields.personalise(composed.html, composed.text, values)
    return Done(
        Preview(
            list=list_slug,
            subject=composed.subject,
            html=html,
            text=text,
            stories=len(composed.story_ids),
            shortened=composed.shortened,
            omitted=composed.omitted,
        )
    )


def list_digests(
    session: Session, settings: Settings, list_slug: str | None = None, limit: int = 50
) -> Done[list[dict[str, Any]]]:
    """Newest first: drafts, sends and their status."""
    query = select(Digest).order_by(Digest.id.desc()).limit(limit)
    if list_slug:
        query = query.where(Digest.list_id == find_list(session, list_slug).id)
    return Done([digest_record(d, settings.base_url) for d in session.scalars(query)])
