"""The names the media store writes and the web app serves: `<key>.<ext>` and
`<key>@2x.<ext>`, the key a content hash.

One pattern decides both sides, so the route at /media/{name} can refuse anything else
(a path, a dot file, a temporary file being written) before it touches the store, and a
name, once written, never changes content: caches may keep it forever.
"""

from __future__ import annotations

import re

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
CONTENT_TYPES = {ext: content_type for content_type, ext in EXTENSIONS.items()}

KEY_LENGTH = 32  # hex digits of the sha256 of the stored files: 128 bits
_NAME = re.compile(r"[0-9a-f]{32,64}(?:@2x)?\.(jpg|png|gif|webp)")


def stored_names(key: str, content_type: str) -> tuple[str, str]:
    """The 1x file (as wide as the <img> says) and the 2x one for high-density screens."""
    ext = EXTENSIONS.get(content_type, "jpg")
    return f"{key}.{ext}", f"{key}@2x.{ext}"


def content_type_of(name: str) -> str | None:
    """The type a stored name is served with, or None for a name the store never writes."""
    match = _NAME.fullmatch(name)
    return CONTENT_TYPES[match.group(1)] if match else None
