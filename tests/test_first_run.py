"""What a person meets first: the form, the API docs offline, the outbox, the CLI elsewhere."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsletter.config import SmtpConfig, get_settings
from newsletter.db import session_scope
from newsletter.mail.catcher import start_catcher
from newsletter.mail.smtp import SmtpTransport
from newsletter.subscriptions.lists import create_list
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(sqlite_db: str):
    from newsletter.web.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


class Tags(HTMLParser):
    """Every tag with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


# 11. /subscribe?list=unknown --------------------------------------------------------------


def test_subscribe_to_an_unknown_list_is_a_404_that_says_so(client: TestClient):
    with session_scope() as session:
        create_list(session, "news", "The Newsroom Daily")
    known = client.get("/subscribe?list=news")
    assert known.status_code == 200 and "The Newsroom Daily" in known.text

    page = client.get("/subscribe?list=unknown")
    assert page.status_code == 404
    assert "There is no newsletter called" in page.text and "unknown" in page.text
    links = [a.get("href") for tag, a in tags(page.text) if tag == "a"]
    assert "/subscribe" in links
    assert 'name="email"' not in page.text  # not the default list's form in disguise


# 13. /api/docs without internet ----------------------------------------------------------


def test_api_docs_load_everything_from_this_origin(client: TestClient):
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    urls = [
        a.get("src") or a.get("href")
        for tag, a in tags(docs.text)
        if tag in ("script", "link") and (a.get("src") or a.get("href"))
    ]
    assert len(urls) >= 3  # the bundle, the stylesheet, the icon
    for url in urls:
        assert url and url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200 and asset.content, url
    assert "http://" not in docs.text.replace("http://testserver", "")
    assert "https://" not in docs.text
    csp = docs.headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in csp  # the page's own inline start-up script only
    assert "http" not in csp and "*" not in csp and "unsafe-eval" not in csp
    assert client.get("/openapi.json").status_code == 200


def test_the_wheel_carries_swagger_ui_and_its_licence(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("newsletter-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"):
        assert f"newsletter/web/static/swagger-ui/{name}" in names, name


# 14. The outbox's frame opens links in a new tab ------------------------------------------


def test_links_in_the_outbox_frame_open_in_a_new_tab(client: TestClient):
    port = free_port()
    catcher = start_catcher(get_settings().outbox_dir, port=port)
    try:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", "Confirm"
        msg.set_content("plain")
        msg.add_alternative(
            '<html><head><title>x</title></head><body><p><a href="http://127.0.0.1:8000/'
            'confirm/abc">Yes, subscribe me</a></p></body></html>',
            subtype="html",
        )
        transport = SmtpTransport(SmtpConfig(f"smtp://127.0.0.1:{port}"))
        transport.send(msg.as_bytes(), "a@example.org", ["b@example.org"])
        transport.close()
    finally:
        catcher.stop()
    key = client.get("/outbox").text.split('href="/outbox/')[1].split('"')[0]
    shown = client.get(f"/outbox/{key}")
    (frame,) = [a for tag, a in tags(shown.text) if tag == "iframe"]
    sandbox = (frame["sandbox"] or "").split()
    assert "allow-popups" in sandbox and "allow-popups-to-escape-sandbox" in sandbox
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    inner = tags(frame["srcdoc"] or "")
    assert inner[0] == ("html", {})
    bases = [a for tag, a in inner if tag == "base"]
    assert bases == [{"target": "_blank"}]
    assert [t for t, _ in inner].index("base") < [t for t, _ in inner].index("a")
    (link,) = [a for tag, a in inner if tag == "a"]
    assert link["target"] == "_blank" and link["rel"] == "noopener"
    assert link["href"] == "http://127.0.0.1:8000/confirm/abc"
