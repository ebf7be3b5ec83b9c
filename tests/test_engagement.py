"""Click tracking end to end, and the machine rules one by one.

A digest of a list with click tracking goes out through a real `newsletter worker` to
the SMTP catcher; its links are followed from the received message with a real HTTP
client against a real `newsletter web`: the redirect, what it counts, and what a forged
or altered link gets (a 404 page leading nowhere, nothing counted).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import lxml.html
import pytest
from sqlalchemy import select, update

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.digests import fields as ph
from newsletter.engagement import machine
from newsletter.engagement.codes import LinkCodes, ReaderCodes
from newsletter.engagement.links import pixel, track
from newsletter.engagement.record import Click, record_click
from newsletter.models import (
    Delivery,
    Digest,
    DigestLink,
    Engagement,
    MailingList,
    Story,
    Subscriber,
    Subscription,
)
from tests.send_support import send_env, wait_status
from tests.services import AppProcesses, SmtpServer

STORIES = {
    "https://paper.example/2026/harbour-reopens": "The harbour reopens",
    "https://paper.example/2026/council-budget": "Council passes its budget",
}
BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)


def _digest_html() -> str:
    items = "".join(
        f'<h2><a href="{url}">{title}</a></h2><p>{title}: the report. '
        f'<a href="{url}">Read more</a></p>'
        for url, title in STORIES.items()
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        f"<p>Hello {ph.NAME},</p>{items}"
        '<p><a href="mailto:desk@paper.example">Write to the desk</a></p>'
        f'<p><a href="{ph.UNSUBSCRIBE_URL}">Unsubscribe</a></p></body></html>'
    )


def _composed(app: AppProcesses, track_clicks: bool, track_opens: bool = False) -> int:
    """A list of two confirmed readers and two stories, its draft made by the composer
    (`newsletter digest compose`), which tracks the links when the list says so."""
    with session_scope() as session:
        mlist = MailingList(
            slug="news",
            name="The Newsroom Daily",
            track_clicks=track_clicks,
            track_opens=track_opens,
        )
        session.add(mlist)
        session.flush()
        for i in range(2):
            reader = Subscriber(email=f"reader{i}@example.org", name=f"Reader {i}")
            session.add(reader)
            session.flush()
            session.add(Subscription(list_id=mlist.id, subscriber_id=reader.id, status="confirmed"))
        for n, (url, title) in enumerate(STORIES.items()):
            session.add(Story(slug=f"s{n}", title=title, url=url, list_id=mlist.id))
    record = json.loads(app.run("digest", "compose", "--list", "news", "--json").stdout)
    return int(record["id"])


def _setup(track_clicks: bool, track_opens: bool = False) -> tuple[int, dict[str, int]]:
    """A list of two confirmed readers and a draft digest of two stories, its links
    tracked with links.track as the composer does (the stories' links and nothing else,
    so the test knows every link)."""
    settings = get_settings()
    with session_scope() as session:
        mlist = MailingList(
            slug="news",
            name="The Newsroom Daily",
            track_clicks=track_clicks,
            track_opens=track_opens,
        )
        session.add(mlist)
        session.flush()
        for i in range(2):
            reader = Subscriber(email=f"reader{i}@example.org", name=f"Reader {i}")
            session.add(reader)
            session.flush()
            session.add(Subscription(list_id=mlist.id, subscriber_id=reader.id, status="confirmed"))
        story_ids = {}
        for n, (url, title) in enumerate(STORIES.items()):
            story = Story(slug=f"s{n}", title=title, url=url, list_id=mlist.id)
            session.add(story)
            session.flush()
            story_ids[url] = story.id
        digest = Digest(list_id=mlist.id, subject="Today", html="", text="Hello\n")
        session.add(digest)
        session.flush()
        html = _digest_html()
        if track_clicks:
            html, rows = track(html, digest.id, settings.base_url, settings.secret, story_ids.get)
            session.add_all(rows)
        if track_opens:
            html = html.replace("</body>", pixel(settings.base_url) + "</body>")
        digest.html = html
        digest.story_ids = list(story_ids.values())
        return digest.id, story_ids


def _clicks(story_id: int | None = None) -> list[tuple[int | None, int | None, bool]]:
    with session_scope() as session:
        query = select(Engagement.story_id, Engagement.subscriber_id, Engagement.machine).where(
            Engagement.kind == "click"
        )
        if story_id is not None:
            query = query.where(Engagement.story_id == story_id)
        return [tuple(r) for r in session.execute(query)]  # type: ignore[misc]


@pytest.fixture
def running(sqlite_db: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, sqlite_db, None)
    app = AppProcesses(env, tmp_path)
    # Links lead to this web process (send_env's base URL is a name, not a server).
    app.env["NEWSLETTER_BASE_URL"] = env["NEWSLETTER_BASE_URL"] = app.base_url
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        yield app, server
    finally:
        app.stop()
        server.stop()


def _send(app: AppProcesses, digest_id: int) -> None:
    app.start_worker("--concurrency", "1")
    started = json.loads(app.run("digest", "send", "--list", "news", "--json").stdout)
    assert started["id"] == digest_id
    wait_status(app, digest_id)
    # The reader reads a minute later (a click seconds after delivery is a scanner's).
    with session_scope() as session:
        session.execute(
            update(Delivery).values(updated_at=datetime.now(UTC) - timedelta(minutes=1))
        )


def _links_in(server: SmtpServer, email: str) -> list[str]:
    (received,) = server.to(email)
    html = received.message.get_body(("html",)).get_content()
    return [a.get("href") for a in lxml.html.document_fromstring(html).iter("a")]


def test_a_tracked_digest_redirects_and_counts_per_story_and_reader(running) -> None:  # type: ignore[no-untyped-def]
    app, server = running
    digest_id, story_ids = _setup(track_clicks=True)
    app.start_web()
    _send(app, digest_id)
    hrefs = _links_in(server, "reader0@example.org")
    base = app.base_url
    tracked = [h for h in hrefs if h.startswith(f"{base}/c/")]
    assert len(tracked) == 4 and len(set(tracked)) == 2  # one number per URL
    assert not any(h in STORIES for h in hrefs)  # no story link escaped the tracker
    assert "mailto:desk@paper.example" in hrefs
    assert any("/unsubscribe/" in h for h in hrefs)  # leaving never goes through it
    harbour, council = list(STORIES)

    with httpx.Client(headers={"User-Agent": BROWSER}) as client:
        answer = client.get(tracked[0])
        assert answer.status_code == 302
        assert answer.headers["location"] == harbour
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "no-store" in answer.headers["cache-control"]
        with session_scope() as session:
            reader0 = session.scalar(
                select(Subscriber).where(Subscriber.email == "reader0@example.org")
            )
            assert reader0 is not None and reader0.last_click_at is not None
            reader0_id = reader0.id
        assert _clicks() == [(story_ids[harbour], reader0_id, False)]

        # Another reader's message: their own reader code, counted for them.
        other = [h for h in _links_in(server, "reader1@example.org") if h.startswith(base)]
        assert other[0] != tracked[0]
        reader1 = re.search(r"/c/([^/]+)/", other[0])
        assert reader1 is not None
        answer = client.get(tracked[2])
        assert answer.headers["location"] == council
        assert len(_clicks(story_ids[council])) == 1

        # Forged, altered and foreign links: a 404 page that leads nowhere.
        reader, link = tracked[0].rsplit("/", 2)[-2:]
        delivery_id, mac = reader.split(".")
        forged_reader = f"{int(delivery_id) + 1}.{mac}"
        d, n, link_mac = link.split(".")
        altered_link = f"{d}.{int(n) + 1}.{link_mac}"
        with session_scope() as session:
            other_digest = Digest(list_id=1, subject="Other", html="", text="")
            session.add(other_digest)
            session.flush()
            session.add(
                DigestLink(digest_id=other_digest.id, number=1, url="https://evil.example/")
            )
            foreign = LinkCodes(get_settings().secret)(other_digest.id, 1)
        before = len(_clicks())
        for path in (
            f"/c/{forged_reader}/{link}",
            f"/c/{reader[:-1]}A/{link}",
            f"/c/{reader}/{altered_link}",
            f"/c/{reader}/{foreign}",
            f"/c/{reader}/https://evil.example/",
            f"/c/{reader}/https:%2F%2Fevil.example",
            f"/c/{reader}/%2F%2Fevil.example",
            "/c/https://evil.example",
        ):
            answer = client.get(base + path)
            assert answer.status_code == 404, path
            assert "location" not in answer.headers
            # Nothing on the page leads off the site (its own links stay on this path).
            page = lxml.html.document_fromstring(answer.text)
            for href in [a.get("href", "") for a in page.iter("a")]:
                assert not href.startswith(("http", "//")) or href.startswith(base), href
        # A URL in the query changes nothing: the target comes from the digest.
        answer = client.get(tracked[0] + "?url=https://evil.example/")
        assert answer.status_code == 302 and answer.headers["location"] == harbour
        assert len(_clicks()) == before + 1

        # A test send's reader code (0): redirected, never counted.
        test_code = ReaderCodes(get_settings().secret)(0)
        answer = client.get(f"{base}/c/{test_code}/{link}")
        assert answer.status_code == 302 and answer.headers["location"] == harbour
        assert len(_clicks()) == before + 1

        # A scanner's HEAD: redirected, counted as a machine, last click unchanged.
        answer = client.head(tracked[2])
        assert answer.status_code == 302
        assert _clicks()[-1] == (story_ids[council], reader0_id, True)

        # No pixel on this list: the image answers, nothing is counted.
        answer = client.get(f"{base}/o/{reader}.gif")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    with session_scope() as session:
        assert not session.scalars(select(Engagement).where(Engagement.kind == "open")).all()


def test_the_composer_tracks_a_tracked_list_and_leaves_others_alone(running) -> None:  # type: ignore[no-untyped-def]
    """Through `digest compose` and a worker: a list without tracking keeps its story
    links and has no pixel; a list with it gets redirects that lead to the stories."""
    app, server = running
    app.start_web()
    digest_id = _composed(app, track_clicks=False)
    _send(app, digest_id)
    hrefs = _links_in(server, "reader0@example.org")
    pages = {f"{app.base_url}/stories/s0", f"{app.base_url}/stories/s1"}
    assert pages <= set(hrefs)  # the built-in template links to the stories' pages
    assert not any("/c/" in h for h in hrefs)
    (received,) = server.to("reader0@example.org")
    assert "/o/" not in received.message.get_body(("html",)).get_content()

    with session_scope() as session:
        mlist = session.scalar(select(MailingList).where(MailingList.slug == "news"))
        assert mlist is not None
        mlist.track_clicks = mlist.track_opens = True
        harbour = Story(
            slug="s2",
            title="The harbour, day two",
            url="https://paper.example/2026/harbour-day-two",
            list_id=mlist.id,
            published_at=datetime.now(UTC),
        )
        session.add(harbour)
        session.flush()
        harbour_id = harbour.id
    before = len(server.messages)
    second = json.loads(app.run("digest", "compose", "--list", "news", "--json").stdout)
    app.run("digest", "send", "--list", "news")
    wait_status(app, int(second["id"]))
    server.wait_for(lambda m: len(m) >= before + 2)
    with session_scope() as session:
        session.execute(
            update(Delivery).values(updated_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    (received,) = server.to("reader1@example.org")[1:]
    html = received.message.get_body(("html",)).get_content()
    hrefs = [a.get("href") for a in lxml.html.document_fromstring(html).iter("a")]
    assert not any("/stories/" in h for h in hrefs)
    assert f"{app.base_url}/o/" in html
    tracked = [h for h in hrefs if h.startswith(f"{app.base_url}/c/")]
    with session_scope() as session:
        targets = dict(
            session.execute(
                select(DigestLink.number, DigestLink.url).where(
                    DigestLink.digest_id == int(second["id"])
                )
            ).all()
        )
        (number,) = session.scalars(
            select(DigestLink.number).where(
                DigestLink.digest_id == int(second["id"]), DigestLink.story_id == harbour_id
            )
        ).all()
    assert f"{app.base_url}/stories/s2" in targets.values()
    assert len(set(tracked)) == len(targets)  # every link tracked, one number per URL
    code = LinkCodes(get_settings().secret)(int(second["id"]), number)
    (story_link,) = {h for h in tracked if h.endswith("/" + code)}
    with httpx.Client(headers={"User-Agent": BROWSER}) as client:
        answer = client.get(story_link)
    assert answer.status_code == 302
    assert answer.headers["location"] == f"{app.base_url}/stories/s2"
    assert (harbour_id, False) in [(story, machine) for story, _, machine in _clicks()]


def test_opens_are_counted_only_with_the_pixel_on(running) -> None:  # type: ignore[no-untyped-def]
    app, server = running
    digest_id, _ = _setup(track_clicks=True, track_opens=True)
    app.start_web()
    _send(app, digest_id)
    (received,) = server.to("reader0@example.org")
    html = received.message.get_body(("html",)).get_content()
    (src,) = re.findall(r'src="([^"]*/o/[^"]*\.gif)"', html)
    with httpx.Client() as client:
        assert client.get(src, headers={"User-Agent": BROWSER}).status_code == 200
        # Apple's privacy proxy: the bare agent, no cookie.
        assert client.get(src, headers={"User-Agent": "Mozilla/5.0"}).status_code == 200
        answer = client.get(src.replace(".gif", "x.gif"))
        assert answer.status_code == 200  # a forged code still gets the image ...
    with session_scope() as session:
        opens = (
            session.execute(
                select(Engagement.machine).where(Engagement.kind == "open").order_by(Engagement.id)
            )
            .scalars()
            .all()
        )
    assert opens == [False, True]  # ... and counts nothing


# The machine rules, one test each -----------------------------------------------------

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _seen(**changes: object) -> machine.Request:
    values: dict[str, object] = {
        "kind": "click",
        "method": "GET",
        "user_agent": BROWSER,
        "address": "203.0.113.7",
        "has_cookies": False,
        "at": NOW,
        "delivered_at": NOW - timedelta(hours=2),
    }
    values.update(changes)
    return machine.Request(**values)  # type: ignore[arg-type]


def test_a_person_is_a_person() -> None:
    assert machine.verdict(_seen()) is None
    assert machine.verdict(_seen(kind="open", delivered_at=None)) is None


def test_rule_head() -> None:
    assert machine.verdict(_seen(method="HEAD")) == "head"


@pytest.mark.parametrize(
    "agent",
    [
        "Barracuda Sentinel (EE)",
        "Mimecast-Services/1.0",
        "Proofpoint URL Defense",
        "Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.5095; Pro)",
        "Mozilla/5.0 (compatible; SafeLinks)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    ],
)
def test_rule_scanner_agent(agent: str) -> None:
    assert machine.verdict(_seen(user_agent=agent)) == "scanner_agent"


def test_rule_image_proxy() -> None:
    google = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    assert machine.verdict(_seen(kind="open", user_agent=google)) == "image_proxy"
    assert machine.verdict(_seen(kind="click", user_agent=google)) is None


def test_rule_apple_privacy() -> None:
    assert machine.verdict(_seen(kind="open", address="17.58.100.3")) == "apple_privacy"
    assert machine.verdict(_seen(kind="open", user_agent="Mozilla/5.0")) == "apple_privacy"
    with_cookie = _seen(kind="open", user_agent="Mozilla/5.0", has_cookies=True)
    assert machine.verdict(with_cookie) is None
    assert machine.verdict(_seen(kind="click", address="17.58.100.3")) is None


def test_rule_too_soon() -> None:
    assert machine.verdict(_seen(delivered_at=NOW - timedelta(seconds=3))) == "too_soon"
    assert machine.verdict(_seen(delivered_at=NOW - timedelta(seconds=30))) is None


def test_rule_burst(sqlite_db: str) -> None:
    """Three links of one message in the same second: all three machine, and the last
    click of the reader goes back to the one before the burst."""
    settings = get_settings()
    with session_scope() as session:
        mlist = MailingList(slug="b", name="B", track_clicks=True)
        reader = Subscriber(email="r@example.org")
        session.add_all([mlist, reader])
        session.flush()
        sub = Subscription(
            list_id=mlist.id,
            subscriber_id=reader.id,
            status="confirmed",
            sunset_asked_at=NOW - timedelta(days=1),
        )
        digest = Digest(list_id=mlist.id, subject="D")
        session.add_all([sub, digest])
        session.flush()
        ids = (digest.id, mlist.id, reader.id, sub.id)

    def click(number: int, at: datetime) -> str | None:
        target = Click("https://x.example/", ids[0], number, None, ids[1], ids[2], None)
        with session_scope() as session:
            return record_click(session, settings, target, _seen(at=at, delivered_at=None)).value

    earlier = NOW - timedelta(hours=1)
    assert click(1, earlier) is None
    assert click(1, NOW) is None  # the same link again: a person may do that
    assert click(2, NOW + timedelta(milliseconds=300)) == "burst"
    assert click(3, NOW + timedelta(milliseconds=600)) == "burst"
    with session_scope() as session:
        marks = session.scalars(select(Engagement.machine).order_by(Engagement.id)).all()
        assert marks == [False, True, True, True]
        reader_row = session.get(Subscriber, ids[2])
        assert reader_row is not None
        assert reader_row.last_click_at == earlier
        subscription = session.get(Subscription, ids[3])
        assert subscription is not None and subscription.sunset_asked_at is None
