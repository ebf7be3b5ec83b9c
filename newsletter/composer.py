"""The digest composer: choose a list's new stories, render once, personalise cheaply.

Rendering and CSS inlining happen once per digest; the stored HTML and text keep the
markers of newsletter/placeholders.py where a reader's own values go, so sending one
message is a substitution of a few fields, never a render.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter import placeholders
from newsletter.config import Settings
from newsletter.models import Digest, MailingList


def compose_digest(
    session: Session,
    settings: Settings,
    mailing_list: MailingList,
    *,
    now: datetime | None = None,
    period_key: str | None = None,
) -> Digest | None:
    """A new draft Digest of the list's stories since its previous digest, or None if none."""
    raise NotImplementedError


def personalise(digest_html: str, digest_text: str, values: Mapping[str, str]) -> tuple[str, str]:
    """Both parts for one reader: values keyed by placeholders.NAME/EMAIL/UNSUBSCRIBE_URL."""
    return (
        placeholders.fill(digest_html, values, html=True),
        placeholders.fill(digest_text, values, html=False),
    )
