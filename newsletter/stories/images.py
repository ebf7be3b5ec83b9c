"""Lead images of newly stored stories, fetched once and resized for e-mail.

Called by every way stories come in (files, pages, request bodies, feed imports, the
feed poller) right after they are stored. A picture that cannot be had never stops a
story: the story is kept without it and the warning goes back to whoever added it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.media.attach import attach_lead_image
from newsletter.models import Story


def attach_images(session: Session, settings: Settings, stories: Sequence[Story]) -> list[str]:
    """One warning per story whose image was skipped, naming the story."""
    warnings = []
    for story in stories:
        problem = attach_lead_image(session, settings, story)
        if problem:
            warnings.append(f"{story.slug}: {problem}")
    session.flush()
    return warnings
