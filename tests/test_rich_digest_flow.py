"""A newsroom's story from file to the reader's digest, as an editor works: Markdown with
a lead image, a section and a list, added from the command line in the editor's order;
the digest previewed leads with that story, its picture resized and served by the app.

The picture comes from a local HTTP server (nothing outside this machine is fetched).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from newsletter.cli import main
from newsletter.db import session_scope
from newsletter.subscriptions.lists import create_list

TOKEN = "test-admin-token"


@pytest.fixture
def photo_site() -> Iterator[str]:
    out = io.BytesIO()
    Image.new("RGB", (1600, 900), (120, 60, 40)).save(out, "JPEG")
    photo = out.getvalue()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            found = self.path == "/img/dam.jpg"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "image/jpeg" if found else "text/plain")
            body = photo if found else b"not here"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_an_editors_stories_become_a_digest_led_by_the_first_with_its_picture(
    database: str, photo_site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope() as session:
        create_list(session, "daily", "The Daily Brief")
    lead = write(
        tmp_path,
        "dam.md",
        "---\n"
        "title: Dam repairs finished ahead of winter\n"
        f"image: {photo_site}/img/dam.jpg\n"
        "image_alt: Engineers on the dam's crest at dawn\n"
        'image_credit: "Photo: Olena Marchenko"\n'
        "section: Ukraine\n"
        "---\n\n"
        "Engineers finished the repairs **two weeks early**. Residents were asked to:\n\n"
        "- keep water for three days\n"
        "- check the [outage map](https://grid.example.org/map)\n\n"
        "The reservoir will refill by spring.\n",
    )
    second = write(tmp_path, "trains.txt", "Night trains to Lviv return\n\nThe service resumes.\n")
    missing = write(
        tmp_path,
        "market.md",
        f"---\ntitle: Market reopens\nimage: {photo_site}/img/none.jpg\n---\n\nStalls are back.\n",
    )

    added = CliRunner().invoke(
        main, ["stories", "add", str(lead), str(second), str(missing), "--list", "daily"]
    )
    assert added.exit_code == 0, added.output
    # The picture that is not there is a warning; the story is added all the same.
    assert "warning: market-reopens: image skipped:" in added.output
    assert "3 added" in added.output

    html_out = tmp_path / "preview.html"
    shown = CliRunner().invoke(
        main, ["digest", "preview", "--list", "daily", "--out", str(html_out)]
    )
    assert shown.exit_code == 0, shown.output
    html = html_out.read_text(encoding="utf-8")
    text = html_out.with_suffix(".txt").read_text(encoding="utf-8")

    # The editor's order: the dam leads, then the trains, then the market.
    order = [html.index(t) for t in ("Dam repairs", "Night trains", "Market reopens")]
    assert order == sorted(order)
    # The lead's picture, resized for e-mail, with its size and alt text for images off.
    img = re.search(r"<img[^>]*alt=\"Engineers on the dam's crest at dawn\"[^>]*>", html)
    assert img is not None, html[:2000]
    tag = img.group(0)
    assert 'width="600"' in tag and 'height="338"' in tag
    src = re.search(r'src="([^"]+)"', tag)
    assert src is not None and "/media/" in src.group(1)
    assert "Photo: Olena Marchenko" in html
    # Rich body: bold and a list survive; the excerpt does not end on "asked to:".
    assert re.search(r"<strong[^>]*>two weeks early</strong>", html)
    assert re.search(r"<li[^>]*>keep water for three days</li>", html)
    assert "- keep water for three days" in text
    assert "outage map [1]" in text and "[1] https://grid.example.org/map" in text

    # The web app serves the picture the digest points at.
    monkeypatch.setenv("NEWSLETTER_ADMIN_TOKEN", TOKEN)
    from newsletter.web.app import create_app

    with TestClient(create_app()) as client:
        path = src.group(1).split("/media/", 1)[1]
        got = client.get(f"/media/{path}")
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(got.content)).size == (600, 338)
