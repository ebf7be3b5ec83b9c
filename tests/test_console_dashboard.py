"""The dashboard in a real browser: per-list counts, the growth chart and its table, the
last sends, policy blocks and health, from what `newsletter stats refresh` counted."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Locator, expect
from sqlalchemy.orm import Session

from newsletter.db import engine_for
from newsletter.models import (
    BounceEvent,
    Delivery,
    Digest,
    MailingList,
    Subscriber,
    Subscription,
)
from tests.console_support import (
    SHOTS,
    Console,
    browser,
    check_page,
    console,
    console_env,
    login,
    new_page,
)
from tests.services import AppProcesses, SmtpServer, wait_until

__all__ = ["browser", "console"]  # fixtures


def seed(console: Console) -> str:
    """Two lists with readers, and a sent digest with deliveries, a hard bounce and policy
    blocks, written into the service's database as its actions would (a command per row
    would cost seconds each). Returns the day (UTC, ISO) they were written on."""
    now = datetime.now(UTC)
    with Session(engine_for(console.app.env["NEWSLETTER_DATABASE_URL"])) as session:
        morning = MailingList(slug="morning", name="Morning Briefing")
        evening = MailingList(slug="evening", name="Evening Edition")
        session.add_all([morning, evening])
        session.flush()
        readers = []
        for email, lst, confirmed in (
            ("m0@example.com", morning, True),
            ("m1@example.com", morning, True),
            ("m2@example.com", morning, True),
            ("pending@example.com", morning, False),
            ("e0@example.com", evening, True),
        ):
            reader = Subscriber(email=email)
            reader.subscriptions.append(
                Subscription(
                    list_id=lst.id,
                    status="confirmed" if confirmed else "unconfirmed",
                    confirmed_at=now if confirmed else None,
                )
            )
            readers.append(reader)
        session.add_all(readers)
        session.flush()
        digest = Digest(
            list_id=morning.id,
            subject="Tuesday's briefing",
            status="sent",
            started_at=now - timedelta(hours=2),
            finished_at=now - timedelta(hours=1),
        )
        session.add(digest)
        session.flush()
        rows = [
            Delivery(digest_id=digest.id, subscriber_id=r.id, status=status)
            for r, status in zip(readers[:3], ("sent", "sent", "bounced"), strict=True)
        ]
        session.add_all(rows)
        session.flush()
        session.add(
            BounceEvent(delivery_id=rows[2].id, kind="hard", reason="bad_mailbox", created_at=now)
        )
        for domain, n in (("gmail.com", 3), ("outlook.com", 1)):
            for _ in range(n):
                session.add(
                    BounceEvent(
                        kind="policy", reason="blocked_ip", remote_domain=domain, source="send"
                    )
                )
        session.commit()
    return now.date().isoformat()


def test_a_viewer_sees_the_counted_lists_growth_sends_blocks_and_health(
    console: Console, browser: Browser
) -> None:
    day = seed(console)
    assert "refreshed" in console.cli("stats", "refresh")
    console.user("desk@example.com", "viewer")
    page = new_page(browser)
    login(page, console, "desk@example.com")
    page.goto(console.url("/console"))

    lists = page.get_by_role("table", name="Subscriptions of each list by status")
    morning = lists.get_by_role("row", name="Morning Briefing")
    expect(morning.get_by_role("cell")).to_have_text(["3", "1", "0"])
    evening = lists.get_by_role("row", name="Evening Edition")
    expect(evening.get_by_role("cell")).to_have_text(["1", "0", "0"])

    # The chart of every list, named for screen readers, and its table: the seeded day's
    # numbers (that day, not the clock's at this line: a run may cross midnight UTC).
    chart = page.get_by_role("img", name="Growth of all lists, last 30 days")
    expect(chart).to_be_visible()
    page.get_by_text("The numbers as a table").first.click()
    growth = page.get_by_role("table", name="Growth of all lists, last 30 days")
    expect(growth.get_by_role("row", name=day).get_by_role("cell")).to_have_text(
        ["5", "4", "0", "1"]  # joins, confirmations, leaves, bounces
    )

    # One list's growth, chosen with the form (works without JavaScript).
    page.get_by_label("List", exact=True).select_option(label="Evening Edition")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(console.url("/console?list=evening#growth-h"))
    expect(
        page.get_by_role("img", name="Growth of “Evening Edition”, last 30 days")
    ).to_be_visible()

    sends = page.get_by_role("table", name="The latest sends with their counts")
    row = sends.get_by_role("row", name="Tuesday's briefing")
    cells = row.get_by_role("cell")
    expect(cells.nth(0)).to_contain_text("sent")
    expect(cells.nth(0)).to_contain_text("Morning Briefing")
    expect(cells.nth(1)).to_have_text("2 of 3")  # delivered
    expect(cells.nth(2)).to_have_text("1")  # bounced
    expect(cells.nth(3)).to_have_text("0")  # complained

    blocks = page.get_by_role("img", name="Policy blocks by receiving domain, last 30 days")
    expect(blocks).to_be_visible()
    expect(page.get_by_text("4 in the last 30 days")).to_be_visible()
    expect(blocks.locator("rect")).to_have_count(2)
    assert blocks.locator("rect").first.get_attribute("data-name") == "gmail.com"

    health = page.get_by_role("region", name="Health")

    def check(name: str) -> Locator:
        return health.get_by_role("listitem").filter(has_text=re.compile(f"^{name}"))

    expect(check("Database")).to_contain_text("OK")
    expect(check("SMTP")).to_contain_text(re.compile(r"OK 127\.0\.0\.1:\d+ reachable"))
    expect(check("Broker")).to_contain_text("OK embedded (file system)")
    expect(check("Workers")).to_contain_text("embedded broker: not pinged")
    expect(check("Beat last tick")).to_contain_text("Late none yet")
    assert "test-secret-key" not in page.content()

    unknown = page.goto(console.url("/console?list=nope"))
    assert unknown is not None and unknown.status == 404
    expect(page.get_by_role("alert")).to_have_text("There is no list 'nope'.")

    page.goto(console.url("/console"))
    check_page(page, "dashboard")
    # The charts' colours and the health states keep their contrast in dark mode too.
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(SHOTS / "dashboard-dark.png"), full_page=True)
    contrast = Axe().run(page, options={"runOnly": ["color-contrast"]})
    assert not contrast.response["violations"], contrast.response["violations"]


def test_with_redis_a_worker_and_beat_the_counts_refresh_by_themselves(
    tmp_path: Path, smtp_server: SmtpServer, redis_url: str, browser: Browser
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    app = AppProcesses({}, tmp_path)
    console_env(app, data_dir, smtp_server.url, f"sqlite:///{data_dir / 'newsletter.db'}")
    app.env["NEWSLETTER_BROKER_URL"] = redis_url
    app.env["NEWSLETTER_STATS_REFRESH_SECONDS"] = "1"
    app.run("db", "upgrade")
    try:
        app.start_web()
        app.start_worker()
        app.wait_ready()
        console = Console(app)
        console.user("desk@example.com", "viewer")
        page = new_page(browser)
        login(page, console, "desk@example.com")  # the first view counts: nothing yet
        with Session(engine_for(app.env["NEWSLETTER_DATABASE_URL"])) as session:
            session.add(MailingList(slug="noon", name="Noon Update"))
            session.commit()
        app._spawn("beat", name="beat")

        health = page.get_by_role("region", name="Health")
        beat = health.get_by_role("listitem").filter(has_text=re.compile("^Beat last tick"))

        def ticked() -> bool:
            page.goto(console.url("/console"))
            return "OK" in beat.inner_text()

        wait_until(ticked, 60, "beat's refresh to run on the worker", interval=1)
        # Beat's refresh counted the list made after the first view.
        lists = page.get_by_role("table", name="Subscriptions of each list by status")
        expect(lists.get_by_role("row", name="Noon Update")).to_be_visible()
        workers = health.get_by_role("listitem").filter(has_text=re.compile("^Workers"))
        expect(workers).to_contain_text(re.compile(r"OK 1 alive: celery@"))
        broker = health.get_by_role("listitem").filter(has_text=re.compile("^Broker"))
        expect(broker).to_contain_text("OK Redis, answered in")
        assert redis_url not in page.content()
    finally:
        app.stop()
