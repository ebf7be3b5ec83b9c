"""Stories from a URL: `newsletter stories add https://…` and POST /api/stories {"url": …}
fetch a news page from a local site and keep the article, without the site around it.

The site is a real HTTP server on 127.0.0.1 serving the fixture pages: the Bakhmut
report inside a news site's chrome (navigation, the sign-up banner the scraped sample
had on top, share buttons, related stories, comments, footer, og: tags and JSON-LD).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from newsletter.cli import main
from newsletter.db import session_scope
from newsletter.models import MailingList, Media, Story
from newsletter.stories.store import story_paragraphs
from newsletter.subscriptions.lists import create_list
from tests.services import free_port

FIXTURES = Path(__file__).parent / "fixtures"
PAGES = FIXTURES / "pages"
HEADLINE = "Ukraine vows to defend Bakhmut as Russian grip tightens"
CANONICAL = "https://news.example.com/world/2023/03/07/ukraine-vows-to-defend-bakhmut"
# The report's paragraphs as the scraped sample has them, below its banner and headline.
REPORT = [
    p.strip()
    for p in re.split(r"\n\s*\n", (FIXTURES / "stories" / "bakhmut.txt").read_text().strip())
][3:]
# Text of the site around the article: none of it may reach the story.
CHROME = [
    "SIGN UP",
    "newsletter",
    "delivered straight to you",
    "Skip to main content",
    "Business Briefing",
    "Breaking: markets",
    "Share on Social",
    "Related stories",
    "Wagner chief says ammunition still being withheld",
    "Never miss a story",
    "Comments are closed",
    "About the Courier",
    "All rights reserved",
    "dataLayer",
]
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Site:
    """A news site on 127.0.0.1: path -> (status, headers, body); every request kept."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    base: str = ""

    def page(self, path: str, body: bytes, kind: str = "text/html; charset=utf-8") -> str:
        self.routes[path] = (200, {"Content-Type": kind}, body)
        return self.base + path

    def redirect(self, path: str, to: str) -> str:
        self.routes[path] = (302, {"Location": to}, b"")
        return self.base + path


IMAGES_AT = b"https://news.example.com/img/"


def _photo(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 110, 70)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.requests.append(self.path)
            status, headers, body = state.routes.get(
                self.path, (404, {"Content-Type": "text/html"}, b"<h1>Not found</h1>")
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except ConnectionError:
                pass  # the client stopped reading (a page over the byte cap)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    # The page's pictures are served by this site too: nothing outside is fetched.
    page = (PAGES / "bakhmut.html").read_bytes()
    state.page("/world/bakhmut", page.replace(IMAGES_AT, state.base.encode() + b"/img/"))
    state.page("/img/2023/03/bakhmut-trench.jpg", _photo(1200, 675), "image/jpeg")
    state.page("/transport/trains", (PAGES / "night-trains.html").read_bytes())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def daily(database: str) -> str:
    with session_scope() as session:
        create_list(session, "daily", "The Daily Brief")
    return "daily"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def stories() -> list[Story]:
    with session_scope() as session:
        return list(session.scalars(select(Story).order_by(Story.position, Story.id)))


def count() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count(Story.id))) or 0)


def assert_is_the_report(story: Story) -> None:
    assert story.title == HEADLINE
    assert story.author == "Marta Kovalenko"
    assert story.published_at.isoformat() == "2023-03-07T06:15:00+00:00"
    assert story.url == CANONICAL and story.guid == CANONICAL
    assert (story.image or "").endswith("/img/2023/03/bakhmut-trench.jpg")
    assert story.image_alt == "Ukrainian soldiers in a trench west of Bakhmut"
    assert story.section == "Europe"
    assert story_paragraphs(story) == REPORT
    assert story.lede == REPORT[0]
    # The rich body: the same 25 paragraphs as HTML, the lead image not repeated in it.
    assert story.body_html.count("<p>") == 25
    assert story.body_html.startswith(f"<p>{REPORT[0]}</p>")
    assert "bakhmut-trench.jpg" not in story.body_html
    everything = "\n".join([story.title, story.body, story.lede, story.body_html])
    for chrome in CHROME:
        assert chrome.lower() not in everything.lower(), chrome


# The command --------------------------------------------------------------------------------


def test_a_news_page_becomes_the_article_without_the_site_around_it(daily: str, site: Site) -> None:
    result = run("stories", "add", f"{site.base}/world/bakhmut", "--list", daily)
    assert result.exit_code == 0, result.output
    assert f"added ukraine-vows-to-defend-bakhmut-as-russian-grip-tightens: {HEADLINE}" in (
        result.output
    )
    [story] = stories()
    assert_is_the_report(story)
    with session_scope() as session:
        daily_id = session.scalar(select(MailingList.id).where(MailingList.slug == daily))
        # Its lead image was fetched once and resized for e-mail.
        media = session.get(Media, story.image_media_id)
        assert media is not None and (media.width, media.height) == (600, 338)
    assert story.list_id == daily_id
    assert "warning" not in result.output


def test_files_and_pages_are_stored_in_the_order_given_the_first_leading(
    daily: str, site: Site
) -> None:
    result = run(
        "stories",
        "add",
        f"{site.base}/transport/trains",
        str(FIXTURES / "stories" / "harbour.md"),
        f"{site.base}/world/bakhmut",
        "--list",
        daily,
        "--json",
    )
    assert result.exit_code == 0, result.output
    added = json.loads(result.output)["added"]
    titles = [
        "Night trains return to the coast line",
        "Harbour “reopens” after storm — fishermen cheer 🎣",
        HEADLINE,
    ]
    assert [a["title"] for a in added] == titles
    assert [s.title for s in stories()] == titles  # ordered by position
    positions = [a["position"] for a in added]
    assert positions == sorted(positions) and len(set(positions)) == 3
    trains = stories()[0]
    # A relative canonical link and og:image are made absolute against the page.
    assert trains.url == f"{site.base}/transport/night-trains-return"
    assert trains.image == f"{site.base}/img/night-train.jpg"
    assert trains.author == "Jonas Weber"
    assert trains.published_at.isoformat() == "2026-11-27T17:05:00+00:00"
    # The headline on top of the article is the title, not the lede.
    assert trains.lede.startswith("The night train between the capital and the coast")
    assert "<h3>Tickets from 39 euros</h3>" in trains.body_html
    # A link in the article points at the site, not at a path that means nothing in a mail.
    assert f'<a href="{site.base}/timetables/coast" rel="noopener noreferrer">timetable</a>' in (
        trains.body_html
    )
    for chrome in ("cookies", "Subscribe", "Transport Section", "Most read", "Ferry fares"):
        assert chrome not in trains.body + trains.lede + trains.body_html


def test_the_same_article_at_another_address_is_stored_once(daily: str, site: Site) -> None:
    moved = site.redirect("/r/abc", "/world/bakhmut")
    tracked = site.page("/world/bakhmut?utm_source=mail", (PAGES / "bakhmut.html").read_bytes())
    assert run("stories", "add", moved).exit_code == 0
    again = run("stories", "add", tracked)
    assert again.exit_code == 0, again.output
    assert "already stored" in again.output
    assert count() == 1
    assert stories()[0].url == CANONICAL  # its canonical address, not the redirect's


NO_ARTICLE = b"<html><head><title>Menu</title></head><body><nav><a href='/'>Home</a></nav></body>"


BAD_PAGES = {
    "missing": ("/gone", "could not be fetched (HTTP 404 Not Found)"),
    "pdf": ("/report.pdf", "is not an HTML page (its content type is application/pdf)"),
    "too large": ("/huge", "is larger than 5 MB"),
    "redirect loop": ("/loop", "redirects more than 5 times"),
    "no article": ("/menu", "has no article text that could be found"),
}


def _serve_bad_pages(site: Site) -> None:
    site.page("/report.pdf", b"%PDF-1.7\n", "application/pdf")
    site.page("/huge", b"<html><body>" + b"<p>word</p>" * 600_000 + b"</body></html>")
    site.redirect("/loop", "/loop")
    site.page("/menu", NO_ARTICLE)


@pytest.mark.parametrize("case", sorted(BAD_PAGES))
def test_a_page_that_cannot_be_a_story_is_refused_by_address_and_nothing_is_stored(
    daily: str, site: Site, case: str
) -> None:
    _serve_bad_pages(site)
    path, problem = BAD_PAGES[case]
    bad = site.base + path
    # A good page and a good file first: the batch is all or nothing.
    result = run(
        "stories", "add", f"{site.base}/world/bakhmut", str(FIXTURES / "stories" / "harbour.md"),
        bad,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"Error: {bad}: {problem}"]
    assert count() == 0


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("ftp://news.example.com/story", "only http:// and https:// addresses can be fetched"),
        ("file:///etc/passwd", "only http:// and https:// addresses can be fetched"),
        ("http://", "is not a valid web address"),
    ],
)
def test_an_address_that_is_not_http_is_refused(
    daily: str, site: Site, address: str, problem: str
) -> None:
    result = run("stories", "add", f"{site.base}/world/bakhmut", address)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"Error: {address}: {problem}"]
    assert count() == 0


def test_an_unreachable_site_is_one_line_on_stderr_from_the_shell(
    daily: str, site: Site, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/story"
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "stories", "add", f"{site.base}/world/bakhmut",
         closed],
        env=dict(os.environ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"Error: {closed}: could not be reached (")
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert count() == 0
    # The good page was fetched (all inputs are read first), yet nothing was stored.
    assert site.requests == ["/world/bakhmut"]


def test_an_unknown_list_fetches_nothing(daily: str, site: Site) -> None:
    result = run("stories", "add", f"{site.base}/world/bakhmut", "--list", "weekly")
    assert result.exit_code == 2
    assert "weekly" in result.output
    assert site.requests == [] and count() == 0


# The admin API -------------------------------------------------------------------------------


@pytest.fixture
def api(daily: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from tests.conftest import reset_caches

    monkeypatch.setenv("NEWSLETTER_ADMIN_TOKEN", TOKEN)
    reset_caches()
    from newsletter.web.app import create_app

    with TestClient(create_app()) as client:
        yield client


def test_the_api_adds_a_page_by_url_and_its_story_page_shows_the_article(
    api: TestClient, site: Site
) -> None:
    answer = api.post(
        "/api/stories", json={"url": f"{site.base}/world/bakhmut", "list": "daily"}, headers=AUTH
    )
    assert answer.status_code == 201, answer.text
    [record] = answer.json()["added"]
    assert record["title"] == HEADLINE and record["author"] == "Marta Kovalenko"
    assert record["list"] == "daily" and record["url"] == CANONICAL
    assert record["paragraphs"] == 25
    [story] = stories()
    assert_is_the_report(story)
    page = api.get(f"/stories/{record['slug']}")
    assert page.status_code == 200
    assert "Ukrainian forces have dug trenches further west" in page.text
    assert "SIGN UP" not in page.text and "Related stories" not in page.text
    again = api.post("/api/stories", json={"url": f"{site.base}/world/bakhmut"}, headers=AUTH)
    assert again.status_code == 200 and again.json() == {"added": [], "skipped": 1}


def test_the_api_keeps_the_order_of_urls(api: TestClient, site: Site) -> None:
    answer = api.post(
        "/api/stories?list=daily",
        json={"urls": [f"{site.base}/world/bakhmut", f"{site.base}/transport/trains"]},
        headers=AUTH,
    )
    assert answer.status_code == 201, answer.text
    titles = [HEADLINE, "Night trains return to the coast line"]
    assert [a["title"] for a in answer.json()["added"]] == titles
    assert [s.title for s in stories()] == titles
    assert all(a["list"] == "daily" for a in answer.json()["added"])


@pytest.mark.parametrize("case", sorted(BAD_PAGES))
def test_the_api_refuses_a_bad_page_with_a_4xx_naming_it_and_stores_nothing(
    api: TestClient, site: Site, case: str
) -> None:
    _serve_bad_pages(site)
    path, problem = BAD_PAGES[case]
    bad = site.base + path
    answer = api.post(
        "/api/stories", json={"urls": [f"{site.base}/world/bakhmut", bad]}, headers=AUTH
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["message"] == f"{bad}: {problem}"
    assert count() == 0


def test_the_api_refuses_unreachable_sites_other_schemes_and_file_paths(
    api: TestClient, site: Site
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/story"
    answer = api.post("/api/stories", json={"url": closed}, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["message"].startswith(f"{closed}: could not be reached")
    for body in (
        {"url": "ftp://news.example.com/story"},
        {"url": "file:///etc/passwd"},
        {"urls": ["/etc/passwd"]},
        {"urls": []},
        {"url": f"{site.base}/world/bakhmut", "list": ""},
    ):
        refused = api.post("/api/stories", json=body, headers=AUTH)
        assert refused.status_code == 422, (body, refused.text)
    unknown = api.post(
        "/api/stories", json={"url": f"{site.base}/world/bakhmut", "list": "weekly"}, headers=AUTH
    )
    assert unknown.status_code == 404 and "weekly" in unknown.text
    assert site.requests == [] and count() == 0


def test_a_story_given_as_json_with_a_link_is_still_a_story_not_a_fetch(
    api: TestClient, site: Site
) -> None:
    body = {"title": "Water is back", "lede": "Supply returned.", "url": f"{site.base}/x"}
    answer = api.post("/api/stories", json=body, headers=AUTH)
    assert answer.status_code == 201, answer.text
    assert [s.title for s in stories()] == ["Water is back"]
    assert site.requests == []


def test_without_private_networks_nothing_on_this_machine_is_fetched(
    daily: str, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production's default: a page or a picture whose host is this machine or a private
    network is refused before any request reaches it (a story must not be a way into
    the newsroom's own network)."""
    from tests.conftest import reset_caches

    monkeypatch.setenv("NEWSLETTER_FETCH_PRIVATE_NETWORKS", "false")
    reset_caches()
    site.requests.clear()
    result = run("stories", "add", f"{site.base}/world/bakhmut", "--list", daily)
    assert result.exit_code == 2
    assert "127.0.0.1 is a private address (127.0.0.1)" in result.output
    assert site.requests == [] and count() == 0
    # A story file whose picture is on a private address: added, the picture refused.
    story = Path(site.base.replace("http://", "").replace(":", "_") + ".md")
    path = Path(os.environ["NEWSLETTER_DATA_DIR"]) / story
    path.write_text(
        f"---\ntitle: Pictured\nimage: {site.base}/img/2023/03/bakhmut-trench.jpg\n---\n\nText.\n"
    )
    added = run("stories", "add", str(path), "--list", daily)
    assert added.exit_code == 0, added.output
    assert "image skipped:" in added.output and "is a private address" in added.output
    assert site.requests == []
