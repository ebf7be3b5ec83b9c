"""The sends pages in a real browser with a real worker: live progress over Server-Sent
Events, pause and resume from the page, two-person approval, what a viewer may not do,
and the bounces page with its suppression list."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from newsletter.db import session_scope
from newsletter.stats import aggregates
from tests.console_support import Console, browser, check_page, console_env, login, new_page
from tests.send_support import populate
from tests.services import AppProcesses, SmtpRules, SmtpServer, wait_until

__all__ = ["browser"]  # fixtures

Start = Callable[..., Console]


@pytest.fixture
def start(
    sqlite_db: str, data_dir: Path, tmp_path: Path, smtp_server: SmtpServer
) -> Iterator[Start]:
    """`newsletter web` and one worker on the test's SQLite database, with extra settings
    (NEWSLETTER_SEND_RATE, NEWSLETTER_SEND_APPROVAL) given before either starts. The test
    process itself uses the same database (sqlite_db), so it can populate a list."""
    apps: list[AppProcesses] = []

    def started(**env: str) -> Console:
        app = AppProcesses({}, tmp_path)
        console_env(app, data_dir, smtp_server.url, sqlite_db)
        app.env.update(env)
        apps.append(app)
        app.start_web()
        app.start_worker("--concurrency", "1")
        return Console(app)

    try:
        yield started
    finally:
        for app in apps:
            app.stop()


def count(page: Page, name: str) -> int:
    return int(page.locator(f'#send [data-field="{name}"]').inner_text().replace(",", ""))


def status(page: Page) -> str:
    return page.locator('#send [data-field="label"]').inner_text()


def csrf(page: Page) -> str:
    return page.locator('input[name="csrf"]').first.input_value()


def test_a_sender_watches_a_send_live_pauses_and_resumes_it_and_a_viewer_cannot(
    start: Start, browser: Browser
) -> None:
    console = start(NEWSLETTER_SEND_RATE="25")
    readers = [f"reader{i}@example.org" for i in range(500)]
    send_id = populate(readers)
    console.user("sender@example.com", "sender")
    console.user("viewer@example.com", "viewer")
    console.app.wait_ready()
    page = new_page(browser)
    login(page, console, "sender@example.com")

    console.cli("digest", "send", "--list", "news")
    page.goto(console.url(f"/console/sends/{send_id}"))
    page.evaluate("window.notReloaded = true")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Send #{send_id}: Today’s digest")
    expect(page.locator("[data-live]")).to_be_visible()  # the event stream is open
    # The counts move without a reload: pushed by the server.
    first = count(page, "sent")
    wait_until(lambda: count(page, "sent") > first, 30, "the sent count to grow on the page")
    assert page.evaluate("window.notReloaded") is True
    assert status(page) == "sending"
    check_page(page, "send-running")

    page.get_by_role("button", name="Pause").click()
    expect(page.locator(".notice")).to_contain_text("Paused")
    expect(page.locator('#send [data-field="label"]')).to_have_text("paused")
    expect(page.locator("#send .pause-reason")).to_contain_text("paused by the operator")
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    paused_at = count(page, "sent")
    assert paused_at < 500

    # A viewer sees the numbers but no control, and the action URL refuses them.
    watcher = new_page(browser)
    login(watcher, console, "viewer@example.com")
    watcher.goto(console.url(f"/console/sends/{send_id}"))
    expect(watcher.locator('#send [data-field="label"]')).to_have_text("paused")
    expect(watcher.get_by_role("button", name="Pause")).to_have_count(0)
    expect(watcher.get_by_role("button", name="Resume")).to_have_count(0)
    expect(watcher.get_by_text("Cancel this send")).to_have_count(0)
    refused = watcher.request.post(
        console.url(f"/console/sends/{send_id}/resume"), form={"csrf": csrf(watcher)}
    )
    assert refused.status == 403
    assert "may not do this" in refused.text()
    expect(watcher.locator('#send [data-field="label"]')).to_have_text("paused")
    watcher.context.close()

    page.get_by_role("button", name="Resume").click()
    expect(page.locator(".notice")).to_contain_text("Resumed")
    page.evaluate("window.notReloaded = true")
    # Watched to the end on the same page: the stream brings "sent" and the last counts.
    expect(page.locator('#send [data-field="label"]')).to_have_text("sent", timeout=90_000)
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator('#send [data-field="sent"]')).to_have_text("500")
    expect(page.locator('#send [data-field="queued"]')).to_have_text("0")
    expect(page.locator('#send [data-field="percent"]')).to_have_text("100.0")
    assert page.locator("#progress").evaluate("bar => [bar.value, bar.max]") == [500, 500]
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    page.reload()
    expect(page.locator('#send [data-field="label"]')).to_have_text("sent")
    expect(page.locator("#rate-chart svg[role=img]")).to_be_visible()
    check_page(page, "send-sent")

    page.get_by_role("link", name="All sends").click()
    row = page.get_by_role("row").filter(has_text=f"#{send_id}")
    expect(row).to_contain_text("sent")
    expect(row.get_by_role("cell").nth(3)).to_have_text("500")
    check_page(page, "sends")

    # The stream itself: a session is needed; for a finished send it says so and ends.
    events = console.url(f"/console/sends/{send_id}/events")
    stream_headers = {"Accept": "text/event-stream"}
    assert httpx.get(events, headers=stream_headers, timeout=10).status_code == 401
    assert httpx.get(events, timeout=10).status_code == 401
    cookie = next(c for c in page.context.cookies() if c["name"] == "nl_console")
    with httpx.stream(
        "GET", events, headers=stream_headers, cookies={cookie["name"]: cookie["value"]}, timeout=10
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        body = answer.read().decode()
    progress = body.split("event: progress\ndata: ", 1)[1].split("\n", 1)[0]
    assert json.loads(progress)["status"] == "sent" and json.loads(progress)["sent"] == 500
    assert body.endswith("event: end\ndata: {}\n\n")


def test_two_people_approve_a_send_in_the_console_and_an_admin_lifts_a_suppression(
    start: Start, browser: Browser, smtp_rules: SmtpRules
) -> None:
    console = start(NEWSLETTER_SEND_APPROVAL="true")
    gone = ["gone1@example.net", "gone2@example.net"]
    smtp_rules.reject.update(gone)
    send_id = populate([f"r{i}@example.org" for i in range(18)] + gone)
    console.user("asker@example.com", "sender")
    console.user("chief@example.com", "admin")
    token = console.cli("users", "token", "asker@example.com").strip()
    asked = httpx.post(
        console.url("/api/sends"),
        json={"list": "news", "skip_preflight": True},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert asked.status_code == 201 and asked.json()["status"] == "awaiting_approval"

    # The person who asked sees the request but no approve button; the domain refuses anyway.
    asker = new_page(browser)
    login(asker, console, "asker@example.com")
    asker.goto(console.url("/console/sends"))
    waiting = asker.get_by_role("region", name="Awaiting approval")
    expect(waiting.get_by_role("row").filter(has_text=f"#{send_id}")).to_contain_text(
        "awaiting approval"
    )
    asker.get_by_role("link", name=re.compile(f"#{send_id} ")).first.click()
    expect(asker.get_by_text("You asked for this send")).to_be_visible()
    expect(asker.get_by_role("button", name="Approve and send")).to_have_count(0)
    check_page(asker, "send-awaiting-approval")
    own = asker.request.post(
        console.url(f"/console/sends/{send_id}/approve"), form={"csrf": csrf(asker)}
    )
    assert own.status == 403
    assert "the person who asked for a send cannot approve it" in own.text()
    asker.context.close()

    chief = new_page(browser)
    login(chief, console, "chief@example.com")
    chief.goto(console.url(f"/console/sends/{send_id}"))
    expect(chief.get_by_text("asker@example.com asked to send")).to_be_visible()
    console.app.wait_ready()
    chief.get_by_role("button", name="Approve and send").click()
    expect(chief.locator(".notice")).to_contain_text("Approved")
    expect(chief.locator('#send [data-field="label"]')).to_have_text("sent", timeout=60_000)
    expect(chief.locator('#send [data-field="sent"]')).to_have_text("18")
    expect(chief.locator('#send [data-field="bounced"]')).to_have_text("2")
    expect(chief.get_by_text("approved by chief@example.com")).to_be_visible()

    # The two hard bounces are on the bounces page (once the counts are refreshed, as
    # beat does every few minutes), their addresses suppressed.
    with session_scope() as session:
        aggregates.refresh(session)
    chief.goto(console.url("/console/bounces"))
    kinds = chief.get_by_role("region", name=re.compile("Bounce events"))
    expect(kinds.get_by_role("row").filter(has_text="hard")).to_have_count(1)
    region = chief.get_by_role("region", name="Suppression list")
    expect(region.get_by_role("row")).to_have_count(3)  # the header and two
    check_page(chief, "bounces")
    chief.get_by_label("Address to lift").fill("gone1@example.net")
    chief.get_by_role("button", name="Lift suppression").click()
    expect(chief.locator(".notice")).to_contain_text("Suppression lifted")
    expect(region.get_by_role("row")).to_have_count(2)
    chief.get_by_label("Address to lift").fill("gone1@example.net")
    chief.get_by_role("button", name="Lift suppression").click()
    expect(chief.get_by_role("alert")).to_contain_text("is not suppressed")
