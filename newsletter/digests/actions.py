"""Operator actions on digests: compose a draft, preview the next one, list them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.digests.archive import digest_record
from newsletter.digests.compose import compose_digest, preview_digest
from newsletter.digests.preview import Preview, preview_message
from newsletter.digests.render import GMAIL_CLIP
from newsletter.effects import Done
from newsletter.errors import Conflict
from newsletter.models import Digest
from newsletter.subscriptions.lists import find_list


@dataclass(frozen=True)
class NextDigest:
    """The next digest as a sample reader would get it, byte for byte, not stored."""

    list: str
    message: Preview
    stories: int
    shortened: int
    omitted: int
    templates: str | None = None  # the list's own template folder; None: the built-in ones

    @property
    def html(self) -> str:
        return self.message.html

    @property
    def text(self) -> str:
        return self.message.text

    def record(self) -> dict[str, Any]:
        return {
            "list": self.list,
            "subject": self.message.subject,
            "stories": self.stories,
            "shortened": self.shortened,
            "omitted": self.omitted,
            "html_bytes": self.message.html_bytes,
            "text_bytes": self.message.text_bytes,
            "message_bytes": self.message.message_bytes,
            "gmail_clip_bytes": GMAIL_CLIP,
            "clipped": self.message.clipped,
            "templates": self.templates or "built-in",
        }


@audit.audited("digests.compose", lambda list_slug, period_key=None: f"list {list_slug}")
def compose(
    session: Session, settings: Settings, list_slug: str, period_key: str | None = None
) -> Done[dict[str, Any]]:
    """A draft of the list's next digest; Conflict when it has no new stories."""
    mailing_list = find_list(session, list_slug)
    digest = compose_digest(session, settings, mailing_list, period_key=period_key)
    if digest is None:
        raise Conflict("list", f"List {list_slug!r} has no new stories since its previous digest.")
    return Done(digest_record(digest, settings.base_url))


def preview(session: Session, settings: Settings, list_slug: str) -> Done[NextDigest | None]:
    """The next digest rendered through the path that sends, for a sample reader (its
    unsubscribe link unsubscribes no one); uses no stories up. It is rendered with the
    list's own templates when it has a folder, and refused (InvalidInput, with the file,
    line and reason) when they no longer make a lawful digest."""
    mailing_list = find_list(session, list_slug)
    composed = preview_digest(session, settings, mailing_list)
    if composed is None:
        return Done(None)
    return Done(
        NextDigest(
            list=list_slug,
            message=preview_message(settings, mailing_list, composed),
            stories=len(composed.story_ids),
            shortened=composed.shortened,
            omitted=composed.omitted,
            templates=mailing_list.template_dir,
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
