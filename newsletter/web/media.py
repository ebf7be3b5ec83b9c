"""/media/{name}: the processed images of the media store, for the digest's <img> tags.

Only names the store writes are answered (a content hash, @2x, an image extension), so no
path, dot file or file being written is ever reached. A name's bytes never change, so
browsers and proxies may keep it for a year without asking again; nosniff keeps a
browser from treating an image as anything but the type it is served with.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from newsletter.config import get_settings
from newsletter.media.names import content_type_of
from newsletter.media.store import CACHE_CONTROL, store_for

router = APIRouter(include_in_schema=False)


@router.api_route("/media/{name}", methods=["GET", "HEAD"])
def media_file(name: str) -> Response:
    content_type = content_type_of(name)
    data = None
    if content_type is not None:
        data = store_for(get_settings()).get(name)
    if content_type is None or data is None:
        raise HTTPException(404, "There is no image at this address.")
    return Response(
        data,
        media_type=content_type,
        headers={
            "Cache-Control": CACHE_CONTROL,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
