"""An image fetched once from its source URL, checked, resized and stored: a Media row.

Why it is shaped this way:

- Once: the row is found by the sha256 of the URL before anything goes over the network,
  so a story added again, or two stories with the same picture, cost no second download
  (and the source's server sees us once).
- The files are stored before the row is written: a crash in between leaves unused files
  (content-addressed, harmless), never a row pointing at nothing. Two processes fetching
  the same URL at once both write the same files; the row's unique source_hash keeps
  one, and the loser takes it.
- The download is bounded in every dimension a hostile or broken server controls:
  scheme (http, https, also after redirects), redirects (5), time (connect 5 s, each
  read 10 s, 30 s in all), and size (10 MB, refused from Content-Length at once, and
  counted while streaming when the server does not say or lies).
"""

from __future__ import annotations

import hashlib
import time
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter import __version__
from newsletter.config import Settings
from newsletter.errors import InvalidInput
from newsletter.media.names import KEY_LENGTH, stored_names
from newsletter.media.process import BadImage, prepare
from newsletter.media.store import MediaStore, store_for
from newsletter.models import Media
from newsletter.netnames import never_resolves, public_only

MAX_BYTES = 10 * 1024 * 1024
MAX_URL = 2000  # Story.image's length
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEADLINE = 30.0  # seconds for the whole download: a server trickling bytes is cut off
MAX_REDIRECTS = 5
# What servers call the four formats; the bytes must then be that format (process.py).
DECLARED = {
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/png": "image/png",
    "image/x-png": "image/png",
    "image/gif": "image/gif",
    "image/webp": "image/webp",
}
HEADERS = {
    "User-Agent": f"newsletter/{__version__} (image fetcher)",
    "Accept": "image/jpeg, image/png, image/webp, image/gif;q=0.8",
}


class ImageRefused(InvalidInput):
    """An image that could not be used: the message names the URL and the reason."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__("image", f"image refused: {url}: {reason}")
        self.url = url
        self.reason = reason


def source_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def _check_url(url: str) -> None:
    if len(url) > MAX_URL:
        raise ImageRefused(url[:80] + "…", f"the address is longer than {MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImageRefused(url, "only http:// and https:// addresses are fetched")
    if never_resolves(parts.hostname):
        raise ImageRefused(url, f"{parts.hostname} is a reserved example name, not a real site")


def download(
    url: str, client: httpx.Client | None = None, *, private: bool = True
) -> tuple[bytes, str]:
    """The body and its declared content type (one of the four formats), or ImageRefused.
    Without `private`, no request (nor redirect) to a non-public address (netnames.py)."""
    _check_url(url)
    own = client is None
    http = client or httpx.Client(
        timeout=TIMEOUT,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers=HEADERS,
        event_hooks={} if private else {"request": [public_only(ImageRefused)]},
    )
    started = time.monotonic()
    try:
        with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise ImageRefused(url, f"the server answered HTTP {response.status_code}")
            raw_type = response.headers.get("content-type", "")
            declared = raw_type.split(";")[0].strip().lower()
            if declared not in DECLARED:
                raise ImageRefused(url, f"not an image ({declared or 'no content type'})")
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_BYTES:
                raise ImageRefused(url, f"too large ({int(length)} bytes; at most {MAX_BYTES})")
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes(64 * 1024):
                received += len(chunk)
                if received > MAX_BYTES:
                    raise ImageRefused(url, f"too large (more than {MAX_BYTES} bytes)")
                if time.monotonic() - started > DEADLINE:
                    raise ImageRefused(url, f"too slow (not received in {DEADLINE:.0f} s)")
                chunks.append(chunk)
            return b"".join(chunks), DECLARED[declared]
    except httpx.TimeoutException:
        raise ImageRefused(url, "the server did not answer in time") from None
    except httpx.TooManyRedirects:
        raise ImageRefused(url, f"more than {MAX_REDIRECTS} redirects") from None
    except httpx.UnsupportedProtocol:
        raise ImageRefused(url, "redirected to an address that is not http(s)") from None
    except httpx.HTTPError as exc:
        raise ImageRefused(url, f"could not be fetched ({exc or type(exc).__name__})") from None
    finally:
        if own:
            http.close()


def fetch_image(
    session: Session,
    settings: Settings,
    url: str,
    *,
    store: MediaStore | None = None,
    client: httpx.Client | None = None,
) -> Media:
    """The Media row for the image at `url`: the existing one, or a new one after download,
    checks and resizing (ImageRefused says why not). Flushed, not committed: the caller's
    unit of work commits it with whatever refers to it."""
    url = url.strip()
    digest = source_hash(url)
    existing = session.scalar(select(Media).where(Media.source_hash == digest))
    if existing is not None:
        return existing
    data, declared = download(url, client, private=settings.may_fetch_private)
    try:
        made = prepare(data, declared)
    except BadImage as exc:
        raise ImageRefused(url, str(exc)) from None
    key = hashlib.sha256(made.one.data + b"\0" + made.two.data).hexdigest()[:KEY_LENGTH]
    one, two = stored_names(key, made.content_type)
    target = store or store_for(settings)
    target.put(two, made.two.data, made.content_type)
    target.put(one, made.one.data, made.content_type)
    media = Media(
        source_hash=digest,
        source_url=url,
        key=key,
        content_type=made.content_type,
        width=made.one.width,
        height=made.one.height,
        bytes=len(made.one.data),  # what a reader's 1x download costs
    )
    try:
        with session.begin_nested():
            session.add(media)
    except IntegrityError:  # fetched by another process meanwhile: theirs is as good
        return session.scalars(select(Media).where(Media.source_hash == digest)).one()
    return media
