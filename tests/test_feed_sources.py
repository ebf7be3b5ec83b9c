"""Feed sources: feeds registered per list (`newsletter feeds …`, /api/feeds) and polled
by beat with conditional GET; a feed's entries become its list's stories, never twice.

The feeds are served by a real HTTP server on 127.0.0.1 that honours If-None-Match and
If-Modified-Since like a web server does and keeps every request's headers, so the tests
see what the poller asked, not only what it stored.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.db import session_scope
from newsletter.models import MailingList, Story
from newsletter.subscriptions.lists import create_list
from tests.conftest import reset_caches
from tests.services import AppProcesses, free_port, wait_until

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def rss(*items: tuple[str, str]) -> bytes:
    """An RSS 2.0 feed of (guid, title) entries, newest first."""
    entries = "".join(
        f"<item><title>{title}</title><link>https://news.example.com/{guid}</link>"
        f'<guid isPermaLink="false">{guid}</guid>'
        f"<pubDate>Mon, 30 Nov 2026 06:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;{title}: the story in one line.&lt;/p&gt;</description></item>"
        for guid, title in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Example News</title><link>https://news.example.com/</link>{entries}"
        "</channel></rss>"
    ).encode()


@dataclass
class Feed:
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    status: int = 200
    kind: str = "application/rss+xml"


@dataclass
class Asked:
    path: str
    headers: dict[str, str]
    answered: int = 0


@dataclass
class FeedSite:
    """Feeds by path; a request carrying the current validators gets a 304."""

    feeds: dict[str, Feed] = field(default_factory=dict)
    asked: list[Asked] = field(default_factory=list)
    base: str = ""

    def url(self, path: str) -> str:
        return self.base + path

    def requests(self, path: str) -> list[Asked]:
        return [a for a in self.asked if a.path == path]


@pytest.fixture
def feeds_site() -> Iterator[FeedSite]:
    site = FeedSite()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            asked = Asked(self.path, {k.lower(): v for k, v in self.headers.items()})
            site.asked.append(asked)
            feed = site.feeds.get(self.path)
            if feed is None:
                feed = Feed(b"not here", status=404, kind="text/plain")
            fresh = (feed.etag and asked.headers.get("if-none-match") == feed.etag) or (
                feed.last_modified and asked.headers.get("if-modified-since") == feed.last_modified
            )
            asked.answered = 304 if feed.status == 200 and fresh else feed.status
            self.send_response(asked.answered)
            if feed.etag:
                self.send_header("ETag", feed.etag)
            if feed.last_modified:
                self.send_header("Last-Modified", feed.last_modified)
            body = b"" if asked.answered == 304 else feed.body
            self.send_header("Content-Type", feed.kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()


@pytest.fixture
def lists(database: str) -> tuple[str, str]:
    with session_scope() as session:
        create_list(session, "daily", "The Daily Brief")
        create_list(session, "weekly", "The Weekly")
    return "daily", "weekly"


def run(*args: str) -> Result:
    from newsletter.cli import main

    return CliRunner().invoke(main, list(args))


def cli_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def poll() -> dict[str, int]:
    """What beat runs: the task's own function, in this process."""
    from workers.tasks import poll_feeds

    return dict(poll_feeds())


def stored() -> list[tuple[str, str | None]]:
    """(title, list slug) of every story, in the editor's order."""
    with session_scope() as session:
        rows = session.execute(
            select(Story.title, MailingList.slug)
            .outerjoin(MailingList, Story.list_id == MailingList.id)
            .order_by(Story.position, Story.id)
        )
        return [(title, slug) for title, slug in rows]


def status_of(url: str) -> dict[str, Any]:
    [record] = [r for r in cli_json("feeds", "list") if r["url"] == url]
    return dict(record)


# Registering -------------------------------------------------------------------------------


@pytest.fixture
def api(lists: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("NEWSLETTER_ADMIN_TOKEN", TOKEN)
    reset_caches()
    from newsletter.web.app import create_app

    with TestClient(create_app()) as client:
        yield client


def test_feeds_are_registered_listed_and_removed_alike_by_the_cli_and_the_api(
    api: TestClient,
) -> None:
    news = "https://news.example.com/feed.xml"
    added = run("feeds", "add", news, "--list", "daily")
    assert added.exit_code == 0, added.output
    assert added.output.strip() == f"added feed 1 for daily: {news}"
    by_api = api.post("/api/feeds", json={"url": news, "list": "weekly"}, headers=AUTH)
    assert by_api.status_code == 201, by_api.text
    assert by_api.json()["list"] == "weekly" and by_api.json()["last_status"] is None

    # The same feed twice for one list: refused by both faces, with the same words.
    twice = run("feeds", "add", news, "--list", "daily")
    assert twice.exit_code == 2 and "has this feed already" in twice.output
    conflict = api.post("/api/feeds", json={"url": news, "list": "weekly"}, headers=AUTH)
    assert conflict.status_code == 409 and "has this feed already" in conflict.text

    for bad_url, bad_list, code, words in (
        (news, "monthly", 404, "no newsletter called 'monthly'"),
        ("ftp://news.example.com/feed", "daily", 422, ""),
    ):
        answer = api.post("/api/feeds", json={"url": bad_url, "list": bad_list}, headers=AUTH)
        assert answer.status_code == code and words in answer.text, answer.text
        refused = run("feeds", "add", bad_url, "--list", bad_list)
        assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "only http:// and https://" in run("feeds", "add", "ftp://x/f", "--list", "daily").output

    listed = cli_json("feeds", "list")
    assert listed == api.get("/api/feeds", headers=AUTH).json()
    assert [(r["id"], r["list"], r["url"]) for r in listed] == [(1, "daily", news),
                                                                 (2, "weekly", news)]  # fmt: skip
    assert [r["list"] for r in cli_json("feeds", "list", "--list", "weekly")] == ["weekly"]
    shown = run("feeds", "list")
    assert shown.output.splitlines()[0] == f"1  daily  {news}  never polled  -"

    removed = run("feeds", "remove", "1")
    assert removed.exit_code == 0 and removed.output.strip() == f"removed feed 1 (daily): {news}"
    assert api.delete("/api/feeds/2", headers=AUTH).json()["removed"] is True
    assert cli_json("feeds", "list") == []
    assert api.delete("/api/feeds/2", headers=AUTH).status_code == 404
    gone = run("feeds", "remove", "2")
    assert gone.exit_code == 2 and gone.output.strip() == "Error: There is no feed 2."


# Polling ------------------------------------------------------------------------------------


def test_a_second_poll_asks_conditionally_and_an_unchanged_feed_costs_nothing(
    lists: tuple[str, str], feeds_site: FeedSite
) -> None:
    modified = format_datetime(datetime(2026, 11, 30, 6, 0, tzinfo=UTC), usegmt=True)
    feeds_site.feeds["/news.xml"] = Feed(
        rss(("n-2", "Bridge repairs finish early"), ("n-1", "Markets hold steady")),
        etag='"v1"',
        last_modified=modified,
    )
    url = feeds_site.url("/news.xml")
    assert run("feeds", "add", url, "--list", "daily").exit_code == 0

    assert poll() == {"feeds": 1, "added": 2, "failed": 0}
    [first] = feeds_site.requests("/news.xml")
    assert "if-none-match" not in first.headers and "if-modified-since" not in first.headers
    assert stored() == [("Bridge repairs finish early", "daily"), ("Markets hold steady", "daily")]
    record = status_of(url)
    assert (record["etag"], record["last_modified"]) == ('"v1"', modified)
    assert record["last_status"] == "2 new of 2 entries" and record["last_polled_at"]

    assert poll() == {"feeds": 1, "added": 0, "failed": 0}
    second = feeds_site.requests("/news.xml")[1]
    assert second.headers["if-none-match"] == '"v1"'
    assert second.headers["if-modified-since"] == modified
    assert second.answered == 304
    assert len(stored()) == 2
    assert status_of(url)["last_status"] == "not modified"


def test_a_changed_feed_adds_only_its_new_entries_and_never_one_twice(
    lists: tuple[str, str], feeds_site: FeedSite
) -> None:
    feeds_site.feeds["/news.xml"] = Feed(rss(("n-1", "Markets hold steady")), etag='"v1"')
    # A feed without validators: answered in full every time, entries all known.
    feeds_site.feeds["/plain.xml"] = Feed(rss(("p-1", "Library extends Sunday hours")))
    for path in ("/news.xml", "/plain.xml"):
        assert run("feeds", "add", feeds_site.url(path), "--list", "weekly").exit_code == 0
    assert poll()["added"] == 2

    feeds_site.feeds["/news.xml"] = Feed(
        rss(
            ("n-3", "Night trains return"),
            ("n-2", "Bridge reopens"),
            ("n-1", "Markets hold steady"),
        ),
        etag='"v2"',
    )
    assert poll() == {"feeds": 2, "added": 2, "failed": 0}
    assert feeds_site.requests("/news.xml")[1].headers["if-none-match"] == '"v1"'
    assert feeds_site.requests("/plain.xml")[1].answered == 200
    assert status_of(feeds_site.url("/plain.xml"))["last_status"] == "0 new of 1 entries"
    assert status_of(feeds_site.url("/news.xml"))["last_status"] == "2 new of 3 entries"
    titles = [title for title, _ in stored()]
    assert sorted(titles) == sorted(
        ["Markets hold steady", "Library extends Sunday hours", "Night trains return",
         "Bridge reopens"]
    )  # fmt: skip
    # The new entries keep the feed's order, after what was stored before.
    assert titles[2:] == ["Night trains return", "Bridge reopens"]
    assert {slug for _, slug in stored()} == {"weekly"}
    assert poll()["added"] == 0
    with session_scope() as session:
        assert session.scalar(select(func.count(Story.id))) == 4


def test_one_failing_feed_does_not_stop_the_others(
    lists: tuple[str, str], feeds_site: FeedSite
) -> None:
    feeds_site.feeds["/down.xml"] = Feed(b"oops", status=500, kind="text/plain")
    feeds_site.feeds["/page.xml"] = Feed(b"<html><body>Not a feed</body></html>", kind="text/html")
    feeds_site.feeds["/news.xml"] = Feed(rss(("n-1", "Markets hold steady")), etag='"v1"')
    closed = f"http://127.0.0.1:{free_port()}/feed.xml"
    urls = [feeds_site.url("/down.xml"), feeds_site.url("/page.xml"), closed,
            feeds_site.url("/news.xml")]  # fmt: skip
    for url in urls:
        assert run("feeds", "add", url, "--list", "daily").exit_code == 0

    assert poll() == {"feeds": 4, "added": 1, "failed": 3}
    assert stored() == [("Markets hold steady", "daily")]
    assert status_of(urls[0])["last_status"] == (
        "error: could not be fetched (HTTP 500 Internal Server Error)"
    )
    assert status_of(urls[1])["last_status"].startswith(
        "error: does not parse as an RSS or Atom feed"
    )
    assert status_of(urls[2])["last_status"].startswith("error: could not be reached (")
    assert status_of(urls[3])["last_status"] == "1 new of 1 entries"
    # A failed feed keeps no validators: it is asked in full next time.
    assert status_of(urls[0])["etag"] is None
    shown = run("feeds", "poll")
    assert shown.exit_code == 0, shown.output
    assert f"({'daily'}) {urls[3]}: not modified" in shown.output
    assert shown.output.strip().endswith("0 stories added from 4 feeds")


def test_a_removed_feed_is_not_polled_and_its_stories_stay(
    lists: tuple[str, str], feeds_site: FeedSite
) -> None:
    feeds_site.feeds["/a.xml"] = Feed(rss(("a-1", "From feed A")))
    feeds_site.feeds["/b.xml"] = Feed(rss(("b-1", "From feed B")))
    for path in ("/a.xml", "/b.xml"):
        assert run("feeds", "add", feeds_site.url(path), "--list", "daily").exit_code == 0
    assert poll()["added"] == 2
    [feed_a] = [r for r in cli_json("feeds", "list") if r["url"].endswith("/a.xml")]
    assert run("feeds", "remove", str(feed_a["id"])).exit_code == 0
    feeds_site.asked.clear()
    assert poll() == {"feeds": 1, "added": 0, "failed": 0}
    assert [a.path for a in feeds_site.asked] == ["/b.xml"]
    assert [title for title, _ in stored()] == ["From feed A", "From feed B"]


# Beat ----------------------------------------------------------------------------------------


def test_beat_polls_every_feed_poll_minutes_and_drops_a_late_tick(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    from workers.app import make_celery

    monkeypatch.setenv("NEWSLETTER_FEED_POLL_MINUTES", "5")
    reset_caches()
    from newsletter.config import get_settings

    entry = make_celery(get_settings()).conf.beat_schedule["poll-feeds"]
    assert entry["task"] == "workers.tasks.poll_feeds"
    assert entry["schedule"] == timedelta(minutes=5)
    assert entry["options"]["expires"] == 300
    import workers.tasks  # noqa: F401 - registers the task
    from workers.app import app

    assert "workers.tasks.poll_feeds" in app.tasks


@pytest.mark.timeout(180)
def test_a_real_worker_and_beat_poll_a_registered_feed(
    sqlite_db: str, data_dir: Path, feeds_site: FeedSite, tmp_path: Path
) -> None:
    with session_scope() as session:
        create_list(session, "daily", "The Daily Brief")
    feeds_site.feeds["/news.xml"] = Feed(rss(("n-1", "Markets hold steady")), etag='"v1"')
    env = {
        "NEWSLETTER_DATA_DIR": str(data_dir),
        "NEWSLETTER_DATABASE_URL": sqlite_db,
        "NEWSLETTER_FEED_POLL_MINUTES": "0.05",  # every 3 s
    }
    app = AppProcesses(env, tmp_path)
    try:
        added = app.run("feeds", "add", feeds_site.url("/news.xml"), "--list", "daily")
        assert added.stdout.startswith("added feed 1 for daily")
        app.start_worker("--concurrency", "1")
        app.wait_ready()
        app._spawn("beat", "--loglevel", "INFO", name="beat")
        wait_until(
            lambda: len(feeds_site.requests("/news.xml")) >= 2,
            90,
            "two polls of the feed by beat",
            details=lambda: app.log("worker")[-3000:] + app.log("beat")[-2000:],
        )
        assert feeds_site.requests("/news.xml")[1].headers.get("if-none-match") == '"v1"'
        deadline = time.monotonic() + 10
        while stored() != [("Markets hold steady", "daily")] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stored() == [("Markets hold steady", "daily")]
    finally:
        app.stop()


def test_an_entry_without_a_headline_is_skipped_and_the_rest_are_stored(
    lists: tuple[str, str], feeds_site: FeedSite
) -> None:
    """A feed is someone else's: one broken entry must not hold back the others at every
    poll. The feed's status says what was skipped."""
    feeds_site.feeds["/mixed.xml"] = Feed(rss(("m-1", "Harbour reopens"), ("m-2", " ")))
    assert run("feeds", "add", feeds_site.url("/mixed.xml"), "--list", "daily").exit_code == 0
    assert poll()["added"] == 1
    assert stored() == [("Harbour reopens", "daily")]
    status = status_of(feeds_site.url("/mixed.xml"))["last_status"]
    assert status.startswith("1 new of 1 entries; 1 skipped (entry 2: has no headline"), status
