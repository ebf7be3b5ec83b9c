"""A story's lead image processed for e-mail, or a one-line warning: never a failure.

A story is worth sending without its picture; a picture that cannot be fetched (the
server is down, the URL is a page, the file is a 1-pixel tracker) must not stop an
operator adding the story. The caller shows the warning beside the story it added.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.media.fetch import ImageRefused, fetch_image
from newsletter.models import Story

log = logging.getLogger(__name__)


def attach_lead_image(session: Session, settings: Settings, story: Story) -> str | None:
    """Fetch and store story.image and point story.image_media at it. None when done (or
    when there is no image), else "image skipped: <url>: <reason>" and no image_media."""
    url = (story.image or "").strip()
    if not url:
        story.image_media = None
        return None
    if story.image_media is not None and story.image_media.source_url == url:
        return None
    try:
        media = fetch_image(session, settings, url)
    except ImageRefused as exc:
        story.image_media = None
        return f"image skipped: {exc.url}: {exc.reason}"
    except Exception:  # noqa: BLE001 - the story goes in without its picture
        log.exception("lead image %s could not be processed or stored", url)
        story.image_media = None
        return f"image skipped: {url}: it could not be processed or stored (see the log)"
    story.image_media = media
    story.image_media_id = media.id
    return None
