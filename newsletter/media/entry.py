"""A story's lead image as a digest entry shows it (digests/entries.py's "image")."""

from __future__ import annotations

from typing import Any

from newsletter.config import Settings
from newsletter.media.names import EXTENSIONS, stored_names
from newsletter.models import Media, Story

__all__ = ["EXTENSIONS", "file_names", "image_entry"]


def file_names(media: Media) -> tuple[str, str]:
    """The stored files: the 1x width and the 2x one for high-density screens."""
    return stored_names(media.key, media.content_type)


def image_entry(settings: Settings, story: Story) -> dict[str, Any] | None:
    """{"src", "src2x", "width", "height", "alt", "credit"}, or None without an image
    processed for e-mail. The alt text falls back to the headline: never empty, so the
    digest reads with images off."""
    media = story.image_media
    if media is None:
        return None
    one, two = file_names(media)
    base = settings.media_base_url
    return {
        "src": base + one,
        "src2x": base + two,
        "width": media.width,
        "height": media.height,
        "alt": story.image_alt or story.title,
        "credit": story.image_credit,
    }
