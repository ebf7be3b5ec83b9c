"""Clicks per story on a send's console page, in a real browser with axe-core: people,
distinct readers and machines apart, opens when the pixel is on, a bar chart beside the
table; the same page without JavaScript."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Browser, expect

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.engagement.links import track
from newsletter.engagement.record import Click, record_click, record_open
from newsletter.models import Delivery, Digest, MailingList, Story, Subscriber, Subscription
from tests.conftest import reset_caches
from tests.console_support import Console, browser, check_page, console, login, new_page
from tests.test_engagement import _seen

__all__ = ["browser", "console"]  # fixtures

NOW = datetime.now(UTC)


def _sent_digest() -> int:
    """A sent digest of three stories to four readers. Harbour: 3 person clicks by 2
    readers and 2 machine clicks; Budget: 1 click; Weather: none. Opens: 2 people, 1
    Apple proxy."""
    settings = get_settings()
    with session_scope() as session:
        mlist = MailingList(slug="daily", name="The Daily", track_clicks=True, track_opens=True)
        session.add(mlist)
        session.flush()
        stories = []
        for n, title in enumerate(("Harbour reopens", "Council budget", "Weather")):
            story = Story(
                slug=f"s{n}", title=title, url=f"https://paper.example/{n}", list_id=mlist.id
            )
            session.add(story)
            stories.append(story)
        session.flush()
        by_url = {s.url: s.id for s in stories}
        digest = Digest(
            list_id=mlist.id,
            subject="Today",
            status="sent",
            started_at=NOW - timedelta(hours=2),
            finished_at=NOW - timedelta(hours=1),
            story_ids=[s.id for s in stories],
        )
        session.add(digest)
        session.flush()
        html = "".join(f'<a href="{s.url}">{s.title}</a>' for s in stories)
        digest.html, rows = track(
            f"<html><body>{html}</body></html>",
            digest.id,
            settings.base_url,
            settings.secret,
            by_url.get,
        )
        session.add_all(rows)
        readers = []
        for i in range(4):
            reader = Subscriber(email=f"r{i}@example.org")
            session.add(reader)
            session.flush()
            session.add(Subscription(list_id=mlist.id, subscriber_id=reader.id, status="confirmed"))
            delivery = Delivery(
                digest_id=digest.id,
                subscriber_id=reader.id,
                status="sent",
                updated_at=NOW - timedelta(hours=2),
            )
            session.add(delivery)
            session.flush()
            readers.append((reader.id, delivery.id))
        ids = (digest.id, mlist.id, [s.id for s in stories], readers)
    digest_id, list_id, story_ids, readers = ids
    plan = [  # (reader, link number, minutes after, HEAD?)
        (0, 1, 10, False),
        (0, 1, 50, False),
        (1, 1, 20, False),
        (2, 1, 30, True),
        (3, 1, 40, True),
        (1, 2, 70, False),
    ]
    for reader, number, minutes, head in plan:
        click = Click(
            "x", digest_id, number, story_ids[number - 1], list_id, readers[reader][0], None
        )
        seen = _seen(
            at=NOW - timedelta(hours=2) + timedelta(minutes=minutes),
            method="HEAD" if head else "GET",
        )
        with session_scope() as session:
            record_click(session, settings, click, seen)
    for reader, agent in ((0, None), (1, None), (2, "Mozilla/5.0")):
        seen = _seen(kind="open", delivered_at=None, **({"user_agent": agent} if agent else {}))
        with session_scope() as session:
            record_open(session, settings, readers[reader][1], seen)
    return digest_id


def test_the_send_page_shows_clicks_per_story(
    console: Console, browser: Browser, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    for name, value in console.app.env.items():
        if name.startswith("NEWSLETTER_"):
            monkeypatch.setenv(name, value)
    reset_caches()
    digest_id = _sent_digest()
    console.user("viewer@example.com", "viewer")
    page = new_page(browser)
    login(page, console, "viewer@example.com")
    page.goto(console.url(f"/console/digests/{digest_id}"))
    page.get_by_role("link", name="clicks per story").click()
    page.wait_for_url(f"**/console/sends/{digest_id}#clicks-h")
    table = page.locator("#story-clicks")
    expect(page.get_by_role("heading", name="Clicks per story")).to_be_visible()
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(3)
    cells = [[c.strip() for c in rows.nth(i).locator("th, td").all_inner_texts()] for i in range(3)]
    assert cells == [
        ["Harbour reopens", "3", "2", "2"],
        ["Council budget", "1", "1", "0"],
        ["Weather", "0", "0", "0"],
    ]
    assert table.locator("tfoot").inner_text().split() == ["All", "stories", "4", "2", "2"]
    chart = page.locator(".clicks-chart svg[role=img]")
    expect(chart).to_be_visible()
    assert "Clicks per story" in (chart.locator("title").text_content() or "")
    opens = page.locator(".engagement .counts")
    assert opens.locator("dd").all_inner_texts() == ["2", "2", "1"]
    check_page(page, "send-clicks")

    # Without JavaScript: the same table.
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    plain = context.new_page()
    login(plain, console, "viewer@example.com")
    plain.goto(console.url(f"/console/sends/{digest_id}"))
    expect(plain.locator("#story-clicks tbody tr").first).to_contain_text("Harbour reopens")
    context.close()
