"""Where the processed images live: a folder in the data dir, or an S3-compatible bucket.

One small interface (put, get) so the fetcher and the /media route do not care which.
The embedded default is the folder, served by the web app at /media/{name}; production
sets NEWSLETTER_MEDIA_S3_URL (AWS S3, MinIO, Cloudflare R2, Backblaze B2, …) and usually
NEWSLETTER_MEDIA_URL to the bucket's public address or a CDN in front of it.

Names are content hashes (names.py): a name is written once with the bytes it will
always have, so a write needs no locking, a repeated write is harmless, and readers and
caches may keep a file forever.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.config import Settings
from newsletter.errors import InvalidInput, Unavailable
from newsletter.media.names import content_type_of

CACHE_CONTROL = "public, max-age=31536000, immutable"


class MediaStore(Protocol):
    def put(self, name: str, data: bytes, content_type: str) -> None:
        """Store the file under `name` (a name from names.stored_names)."""

    def get(self, name: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""


def _checked(name: str) -> str:
    if content_type_of(name) is None:
        raise ValueError(f"not a media file name: {name!r}")
    return name


class FolderStore:
    """Files in one folder. A write goes to a temporary file in the same folder and is
    renamed into place, so a reader (the web app, nginx) never sees half an image, and a
    crash leaves at most a temporary file that no name pattern serves."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, name: str, data: bytes, content_type: str) -> None:
        target = self.folder / _checked(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o644)  # mkstemp's 0600 would hide it from a separate web server
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def get(self, name: str) -> bytes | None:
        try:
            return (self.folder / _checked(name)).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None


@dataclass(frozen=True)
class S3Location:
    """s3://key:secret@host[:port]/bucket[/prefix][?region=…]; s3+http:// for a server
    without TLS (a MinIO on the same host, a test server)."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    prefix: str = ""
    region: str = "us-east-1"

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"S3Location(endpoint={self.endpoint!r}, bucket={self.bucket!r})"


def parse_s3_url(url: str) -> S3Location:
    shape = "must look like s3://key:secret@host[:port]/bucket"
    parts = urlsplit(url)
    scheme = {"s3": "https", "s3+https": "https", "s3+http": "http"}.get(parts.scheme)
    bucket, _, prefix = parts.path.lstrip("/").partition("/")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("media_s3_url", f"NEWSLETTER_MEDIA_S3_URL {shape}") from None
    if scheme is None or not parts.hostname or not parts.username or not bucket:
        raise InvalidInput("media_s3_url", f"NEWSLETTER_MEDIA_S3_URL {shape}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    region = parse_qs(parts.query).get("region", ["us-east-1"])[0]
    return S3Location(
        endpoint=f"{scheme}://{host}" + (f":{port}" if port else ""),
        access_key=unquote(parts.username),
        secret_key=unquote(parts.password or ""),
        bucket=bucket,
        prefix=prefix.strip("/") + "/" if prefix.strip("/") else "",
        region=region,
    )


class S3Store:
    """Objects in a bucket of any S3-compatible service (boto3, path-style addressing,
    which every such service understands). Objects carry their type and a year-long
    immutable Cache-Control; whether the bucket is public is the bucket policy's business
    (no ACL is set: many services refuse ACLs)."""

    def __init__(self, location: S3Location) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise Unavailable(
                "NEWSLETTER_MEDIA_S3_URL needs boto3: pip install 'newsletter[s3]'"
            ) from None
        self.location = location
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=location.endpoint,
            aws_access_key_id=location.access_key,
            aws_secret_access_key=location.secret_key,
            region_name=location.region,
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def _key(self, name: str) -> str:
        return self.location.prefix + _checked(name)

    def put(self, name: str, data: bytes, content_type: str) -> None:
        self.client.put_object(
            Bucket=self.location.bucket,
            Key=self._key(name),
            Body=data,
            ContentType=content_type,
            CacheControl=CACHE_CONTROL,
        )

    def get(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.location.bucket, Key=self._key(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        data: bytes = response["Body"].read()
        return data


@lru_cache(maxsize=4)
def _s3_store(url: str) -> S3Store:
    return S3Store(parse_s3_url(url))  # a boto3 client is slow to make: one per URL


def store_for(settings: Settings) -> MediaStore:
    """The bucket when NEWSLETTER_MEDIA_S3_URL is set, else the media folder."""
    if settings.media_s3_url:
        return _s3_store(settings.media_s3_url)
    return FolderStore(settings.media_folder)
