"""Lead images: fetched once from a real HTTP server (on this machine), checked, made
upright and stripped of metadata, resized for e-mail, stored, and served at /media/."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.media.attach import attach_lead_image
from newsletter.media.entry import file_names, image_entry
from newsletter.media.fetch import MAX_BYTES, ImageRefused, fetch_image
from newsletter.media.store import parse_s3_url
from newsletter.models import Media, Story
from tests.conftest import reset_caches
from tests.services import free_port

Handler = Callable[[BaseHTTPRequestHandler], None]


class ImageServer:
    """An HTTP server in a thread: each path answers with fixed bytes or a handler, and
    every request is counted, so a test sees whether something was downloaded again."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()  # body bytes written per path
        self.done = threading.Event()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.hits[self.path] += 1
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                route(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, path: str, body: bytes, content_type: str) -> str:
        def answer(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            self.sent[path] += len(body)

        self.routes[path] = answer
        return self.url(path)

    def redirect(self, path: str, location: str) -> str:
        def answer(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(302)
            handler.send_header("Location", location)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        self.routes[path] = answer
        return self.url(path)

    def stream(self, path: str, total: int, *, declare: int | None = None) -> str:
        """Up to `total` bytes of JPEG-looking data in 1 MB writes, as long as the client
        reads; Content-Length `declare` if given, else none (ends when the socket closes)."""

        def answer(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", "image/jpeg")
            if declare is not None:
                handler.send_header("Content-Length", str(declare))
            handler.send_header("Connection", "close")
            handler.end_headers()
            chunk = b"\xff\xd8\xff\xe0" + b"\0" * (1024 * 1024 - 4)
            try:
                while self.sent[path] < total:
                    handler.wfile.write(chunk)
                    self.sent[path] += len(chunk)
            except OSError:
                pass  # the client hung up
            finally:
                handler.close_connection = True
                self.done.set()

        self.routes[path] = answer
        return self.url(path)

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def images() -> Iterator[ImageServer]:
    with ImageServer() as server:
        yield server


def jpeg(width: int, height: int, **save: object) -> bytes:
    """A photo-like test card: top half red, bottom half blue, so orientation shows."""
    image = Image.new("RGB", (width, height), (220, 20, 20))
    image.paste((20, 20, 220), (0, height // 2, width, height))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **save)
    return out.getvalue()


def webp(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (240, 200, 40)).save(out, "WEBP")
    return out.getvalue()


def phone_photo() -> bytes:
    """4000×3000 as the sensor stored it, EXIF orientation 6 (shown turned 90° clockwise,
    3000×4000), with the GPS position of where it was taken."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)
    gps[3], gps[4] = "E", (2.0, 17.0, 40.0)
    return jpeg(4000, 3000, exif=exif)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def media_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def refusal(url: str) -> str:
    with session_scope() as session, pytest.raises(ImageRefused) as caught:
        fetch_image(session, get_settings(), url)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.message.startswith(f"image refused: {url}: ")
    return caught.value.reason


def test_a_phone_photo_becomes_two_upright_files_for_email_without_its_gps_position(
    sqlite_db: str, images: ImageServer
):
    url = images.serve("/photo.jpg", phone_photo(), "image/jpeg")
    with session_scope() as session:
        media = fetch_image(session, get_settings(), url)
        one, two = file_names(media)
    folder = get_settings().media_folder
    assert media_files(folder) == sorted([one, two])
    assert (media.width, media.height, media.content_type) == (600, 800, "image/jpeg")
    assert one == f"{media.key}.jpg" and two == f"{media.key}@2x.jpg"

    small, large = (folder / one).read_bytes(), (folder / two).read_bytes()
    assert media.bytes == len(small)
    for data, size in ((small, (600, 800)), (large, (1200, 1600))):
        image = opened(data)
        assert image.format == "JPEG" and image.size == size
        assert image.info.get("progressive") == 1
        assert dict(image.getexif()) == {}
        assert b"Exif" not in data and b"PhoneMaker" not in data
        # Upright: the stored top (red) is shown on the right, the bottom (blue) on the left.
        red, blue = (
            image.getpixel((size[0] * 3 // 4, size[1] // 2)),
            image.getpixel((size[0] // 4, size[1] // 2)),
        )
        assert red[0] > 180 and red[2] < 80, red
        assert blue[2] > 180 and blue[0] < 80, blue

    with session_scope() as session:
        row = session.scalars(select(Media)).one()
        assert (row.source_url, row.key, row.width, row.height) == (url, media.key, 600, 800)


def test_the_same_image_address_is_downloaded_once(database: str, images: ImageServer):
    url = images.serve("/once.jpg", jpeg(1600, 900), "image/jpeg")
    with session_scope() as session:
        first = fetch_image(session, get_settings(), url).id
    with session_scope() as session:
        again = fetch_image(session, get_settings(), url)
        assert again.id == first
        assert session.scalar(select(func.count()).select_from(Media)) == 1
    assert images.hits["/once.jpg"] == 1


def test_a_page_served_as_a_jpeg_is_refused(sqlite_db: str, images: ImageServer):
    page = b"<!doctype html><html><body>" + b"<p>Not a picture</p>" * 50 + b"</body></html>"
    url = images.serve("/page.jpg", page, "image/jpeg")
    assert refusal(url) == "not an image (the bytes are no JPEG, PNG, GIF or WebP)"
    html = images.serve("/page.html", page, "text/html; charset=utf-8")
    assert refusal(html) == "not an image (text/html)"
    png_as_jpeg = io.BytesIO()
    Image.new("RGB", (300, 200)).save(png_as_jpeg, "PNG")
    mislabelled = images.serve("/really.png", png_as_jpeg.getvalue(), "image/jpeg")
    assert refusal(mislabelled) == "the server says JPEG but the bytes are PNG"
    with session_scope() as session:
        assert session.scalars(select(Media)).all() == []
    assert media_files(get_settings().media_folder) == []


def test_an_image_over_the_size_cap_is_refused_without_reading_it_all(
    sqlite_db: str, images: ImageServer
):
    endless = images.stream("/endless.jpg", 200 * 1024 * 1024)
    assert refusal(endless) == f"too large (more than {MAX_BYTES} bytes)"
    assert images.done.wait(10)
    # The server got to write the cap plus what the sockets buffer, not the 200 MB.
    assert images.sent["/endless.jpg"] < MAX_BYTES + 30 * 1024 * 1024

    images.done.clear()
    declared = images.stream("/declared.jpg", 200 * 1024 * 1024, declare=200 * 1024 * 1024)
    assert refusal(declared) == f"too large ({200 * 1024 * 1024} bytes; at most {MAX_BYTES})"
    assert images.done.wait(10)
    assert images.sent["/declared.jpg"] < 30 * 1024 * 1024


def test_a_tiny_image_is_refused(sqlite_db: str, images: ImageServer):
    pixel = images.serve("/pixel.jpg", jpeg(60, 60), "image/jpeg")
    assert refusal(pixel) == "too small (60×60 px; at least 100×50 px)"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_an_image_of_absurd_dimensions_is_refused_before_decoding(
    sqlite_db: str, images: ImageServer
):
    # A few bytes that claim 30 000 × 30 000 pixels (2.7 GB decoded).
    bomb = images.serve("/bomb.png", _png_header_only(30_000, 30_000), "image/png")
    assert refusal(bomb) == "too many pixels (a decompression bomb?)"
    wide = images.serve("/wide.png", _png_header_only(20_000, 400), "image/png")
    assert refusal(wide).startswith("too large (20000×400 px")


def test_only_web_addresses_are_fetched(sqlite_db: str):
    for url in ("file:///etc/passwd", "ftp://example.org/a.jpg", "/images/a.jpg"):
        assert refusal(url) == "only http:// and https:// addresses are fetched"


def test_redirects_are_followed_to_web_addresses_only(sqlite_db: str, images: ImageServer):
    photo = images.serve("/moved.webp", webp(900, 600), "image/webp")
    moved = images.redirect("/old.webp", photo)
    with session_scope() as session:
        media = fetch_image(session, get_settings(), moved)
    assert (media.source_url, media.content_type, media.width) == (moved, "image/jpeg", 600)
    assert images.hits["/moved.webp"] == 1
    away = images.redirect("/away.jpg", "file:///etc/passwd")
    assert refusal(away) == "redirected to an address that is not http(s)"
    loop = images.redirect("/loop.jpg", "/loop.jpg")
    assert refusal(loop) == "more than 5 redirects"


def test_a_png_with_transparency_stays_a_png_and_keeps_it(sqlite_db: str, images: ImageServer):
    logo = Image.new("RGBA", (900, 300), (0, 0, 0, 0))
    logo.paste((10, 120, 200, 255), (300, 0, 600, 300))
    out = io.BytesIO()
    logo.save(out, "PNG")
    url = images.serve("/logo.png", out.getvalue(), "image/png")
    with session_scope() as session:
        media = fetch_image(session, get_settings(), url)
        one, two = file_names(media)
    assert (media.content_type, media.width, media.height) == ("image/png", 600, 200)
    assert one.endswith(".png") and two.endswith("@2x.png")
    for name, size in ((one, (600, 200)), (two, (900, 300))):  # never upscaled
        image = opened((get_settings().media_folder / name).read_bytes())
        assert image.format == "PNG" and image.size == size and image.mode == "RGBA"
        assert image.getpixel((5, 5))[3] == 0  # the transparent corner stays transparent
        assert image.getpixel((size[0] // 2, size[1] // 2)) == (10, 120, 200, 255)


def test_an_opaque_png_and_a_narrow_image_are_jpegs_at_their_own_width(
    sqlite_db: str, images: ImageServer
):
    out = io.BytesIO()
    Image.new("RGB", (400, 250), (30, 140, 30)).save(out, "PNG")
    url = images.serve("/narrow.png", out.getvalue(), "image/png")
    with session_scope() as session:
        media = fetch_image(session, get_settings(), url)
        one, two = file_names(media)
    assert (media.content_type, media.width, media.height) == ("image/jpeg", 400, 250)
    folder = get_settings().media_folder
    assert opened((folder / one).read_bytes()).size == (400, 250)
    assert opened((folder / two).read_bytes()).size == (400, 250)


def test_an_animated_gif_becomes_its_first_frame(sqlite_db: str, images: ImageServer):
    frames = [Image.new("RGB", (320, 200), colour) for colour in ((230, 0, 0), (0, 230, 0))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    url = images.serve("/anim.gif", out.getvalue(), "image/gif")
    with session_scope() as session:
        media = fetch_image(session, get_settings(), url)
        one, _ = file_names(media)
    image = opened((get_settings().media_folder / one).read_bytes())
    assert image.format == "JPEG" and getattr(image, "n_frames", 1) == 1
    red = image.getpixel((160, 100))
    assert red[0] > 200 and red[1] < 40, red


def test_a_story_gets_its_lead_image_or_a_warning_and_is_never_refused(
    sqlite_db: str, images: ImageServer
):
    photo = images.serve("/lead.jpg", jpeg(2400, 1350), "image/jpeg")
    page = images.serve("/lead.html", b"<html></html>", "text/html")
    closed = f"http://127.0.0.1:{free_port()}/gone.jpg"
    with session_scope() as session:
        good = Story(slug="good", title="Bridge reopens", image=photo, image_alt="The bridge")
        bad = Story(slug="bad", title="Council meets", image=page)
        gone = Story(slug="gone", title="Flood warning", image=closed)
        none = Story(slug="none", title="No picture")
        session.add_all([good, bad, gone, none])
        assert attach_lead_image(session, get_settings(), good) is None
        assert attach_lead_image(session, get_settings(), bad) == (
            f"image skipped: {page}: not an image (text/html)"
        )
        warning = attach_lead_image(session, get_settings(), gone)
        assert warning is not None and warning.startswith(f"image skipped: {closed}: ")
        assert attach_lead_image(session, get_settings(), none) is None
    with session_scope() as session:
        stories = {s.slug: s for s in session.scalars(select(Story))}
        assert stories["good"].image_media_id is not None
        assert stories["bad"].image_media_id is None and stories["gone"].image_media_id is None
        entry = image_entry(get_settings(), stories["good"])
        assert image_entry(get_settings(), stories["bad"]) is None
    assert entry is not None
    key = stories["good"].image_media.key  # type: ignore[union-attr]
    base = get_settings().media_base_url
    assert entry == {
        "src": f"{base}{key}.jpg",
        "src2x": f"{base}{key}@2x.jpg",
        "width": 600,
        "height": 338,
        "alt": "The bridge",
        "credit": None,
    }
    assert opened((get_settings().media_folder / f"{key}@2x.jpg").read_bytes()).size == (1200, 676)


@pytest.fixture
def client(sqlite_db: str) -> Iterator[TestClient]:
    from newsletter.web.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def test_the_web_app_serves_stored_images_and_nothing_else(client: TestClient, images: ImageServer):
    url = images.serve("/served.jpg", jpeg(1300, 700), "image/jpeg")
    with session_scope() as session:
        one, two = file_names(fetch_image(session, get_settings(), url))
    folder = get_settings().media_folder
    for name in (one, two):
        response = client.get(f"/media/{name}")
        assert response.status_code == 200
        assert response.content == (folder / name).read_bytes()
        assert response.headers["content-type"] == "image/jpeg"
        assert "immutable" in response.headers["cache-control"]
        assert response.headers["x-content-type-options"] == "nosniff"
    assert client.head(f"/media/{one}").status_code == 200

    (folder / ".tmp-half.part").write_bytes(b"half an image")
    unknown = "0" * 32 + ".jpg"
    for path in (
        f"/media/{unknown}",
        "/media/..%2Fnewsletter.db",
        "/media/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/media/.tmp-half.part",
        f"/media/{one.removesuffix('.jpg')}.png",
        f"/media/{one}%00.html",
    ):
        assert client.get(path).status_code == 404, path


def test_the_s3_address_names_endpoint_bucket_and_keeps_the_secret_out_of_reprs():
    location = parse_s3_url("s3://AKID:se%2Fcret@minio.example:9000/media/digests?region=eu-1")
    assert location.endpoint == "https://minio.example:9000"
    assert (location.access_key, location.secret_key) == ("AKID", "se/cret")
    assert (location.bucket, location.prefix, location.region) == ("media", "digests/", "eu-1")
    assert "cret" not in repr(location)
    assert parse_s3_url("s3+http://k:s@127.0.0.1/b").endpoint == "http://127.0.0.1"
    for bad in ("http://k:s@host/b", "s3://host/bucket", "s3://k:s@host/"):
        with pytest.raises(InvalidInput, match="s3://key:secret@host"):
            parse_s3_url(bad)


def test_images_go_to_an_s3_compatible_bucket_and_the_web_app_serves_them(
    sqlite_db: str, images: ImageServer, monkeypatch: pytest.MonkeyPatch
):
    import boto3  # the test extra installs both (the s3 extra and moto's server)
    from moto import server as moto_server

    port = free_port()
    s3 = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        bucket = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="secret",
            region_name="us-east-1",
        )
        bucket.create_bucket(Bucket="newsroom")
        monkeypatch.setenv(
            "NEWSLETTER_MEDIA_S3_URL", f"s3+http://test:secret@127.0.0.1:{port}/newsroom/img"
        )
        reset_caches()
        url = images.serve("/s3.jpg", jpeg(1800, 1000), "image/jpeg")
        with session_scope() as session:
            one, two = file_names(fetch_image(session, get_settings(), url))
        assert media_files(get_settings().media_folder) == []  # not in the folder
        for name, width in ((one, 600), (two, 1200)):
            stored = bucket.get_object(Bucket="newsroom", Key=f"img/{name}")
            assert stored["ContentType"] == "image/jpeg"
            assert "immutable" in stored["CacheControl"]
            data = stored["Body"].read()
            assert opened(data).size[0] == width

        from newsletter.web.app import create_app

        with TestClient(create_app(), raise_server_exceptions=False) as web:
            response = web.get(f"/media/{two}")
            assert response.status_code == 200 and opened(response.content).size[0] == 1200
            assert web.get(f"/media/{'f' * 32}.jpg").status_code == 404
    finally:
        s3.stop()
