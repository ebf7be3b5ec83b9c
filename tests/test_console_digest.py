"""The digest page in a real browser: compose, arrange, preview the reader's bytes, the
size against Gmail's clip, a test send to oneself, and a send scheduled for a time."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, Page, expect

from tests.console_support import Console, browser, check_page, console, login, new_page
from tests.services import SmtpServer

__all__ = ["browser", "console"]  # fixtures


def paste(page: Page, console: Console, title: str, text: str) -> None:
    page.goto(console.url("/console/stories"))
    details = page.locator("details.add")
    if details.get_attribute("open") is None:
        page.get_by_text("Add a story").click()
    page.get_by_label("Headline").fill(title)
    page.get_by_label("Text").fill(text)
    page.locator("#paste-list").select_option("morning")
    page.get_by_role("button", name="Add story").click()
    expect(page.get_by_role("status")).to_contain_text("Added")


def preview_headlines(page: Page, frame_title: str) -> list[str]:
    frame = page.frame_locator(f"iframe[title='{frame_title}']")
    expect(frame.locator("body")).to_contain_text("Harbour")
    return [
        text.strip()
        for text in frame.locator("h1, h2, h3").all_inner_texts()
        if "Harbour" in text or "Bridge" in text
    ]


def test_an_editor_composes_arranges_previews_and_tests_a_digest(
    console: Console, browser: Browser, smtp_server: SmtpServer
) -> None:
    console.cli("lists", "create", "morning", "--name", "Morning Brief")
    console.cli("subscribers", "add", "reader@example.org", "--list", "morning", "--confirmed")
    console.user("editor@example.com", "editor")
    page = new_page(browser)
    login(page, console, "editor@example.com")
    paste(page, console, "Bridge reopens", "The river bridge is open again.")
    paste(page, console, "Harbour festival", "Boats fill the harbour this weekend.")
    # The edit the reader will see.
    page.get_by_label("Headline").fill("Harbour festival begins")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")

    page.goto(console.url("/console/digests"))
    page.get_by_role("button", name="Compose").click()
    expect(page.get_by_role("status")).to_have_text("Composed a draft of the new stories.")
    assert preview_headlines(page, "Preview at desktop width") == [
        "Bridge reopens",
        "Harbour festival begins",
    ]

    # Move the second story up: the preview, the reader's bytes, leads with it.
    page.get_by_role("button", name="Move “Harbour festival begins” up").click()
    expect(page.get_by_role("status")).to_have_text("Draft rendered again.")
    for width in ("Preview at desktop width", "Preview at phone width"):
        assert preview_headlines(page, width) == ["Harbour festival begins", "Bridge reopens"]
    size = page.locator("#size-meter")
    assert int(size.get_attribute("max") or 0) == 102 * 1024
    expect(page.get_by_text("of Gmail's 104,448 (102 KB) clip")).to_be_visible()
    expect(page.get_by_text("under Gmail's clip at 104,448")).to_be_visible()
    check_page(page, "digest-compose")

    # The bytes served to the frame are the message's HTML part, under a CSP that runs nothing.
    response = page.request.get(console.url(urlsplit(page.url).path + "/preview.html"))
    assert "sandbox" in response.headers["content-security-policy"]
    assert "script-src" not in response.headers["content-security-policy"]
    assert response.text().index("Harbour festival begins") < response.text().index(
        "Bridge reopens"
    )

    # A test to oneself arrives with [TEST]; there is no Send button for an editor.
    page.get_by_role("button", name="Send a test to editor@example.com").click()
    expect(page.get_by_role("status")).to_have_text("Test sent to editor@example.com.")
    got = smtp_server.wait_for(lambda msgs: any(m for m in msgs), timeout=20)
    mail = [m for m in got if "editor@example.com" in m.rcpt_tos][0]
    assert "[TEST]" in str(mail.message["Subject"])
    html = mail.message.get_body(("html",))
    assert html is not None
    body = html.get_content()
    assert body.index("Harbour festival begins") < body.index("Bridge reopens")
    expect(page.get_by_role("button", name="Send now")).to_have_count(0)
    expect(page.get_by_role("button", name="Schedule")).to_have_count(0)
    page.goto(console.url("/console/digests"))
    check_page(page, "digests")


def test_a_sender_schedules_a_send_that_beat_starts_when_due(
    console: Console, browser: Browser
) -> None:
    console.cli(
        "lists", "create", "morning", "--name", "Morning Brief", "--timezone", "Europe/Paris"
    )
    console.cli("subscribers", "add", "reader@example.org", "--list", "morning", "--confirmed")
    story = console.app.workdir / "story.txt"
    story.write_text("Harbour opens\n\nThe harbour opened today.\n")
    console.cli("stories", "add", str(story), "--list", "morning")
    console.user("sender@example.com", "sender")
    page = new_page(browser)
    login(page, console, "sender@example.com")
    page.goto(console.url("/console/digests"))
    page.get_by_role("button", name="Compose").click()
    expect(page.get_by_role("button", name="Send now")).to_be_visible()

    paris = datetime.now(ZoneInfo("Europe/Paris")).replace(second=0, microsecond=0)
    when = paris + timedelta(days=10)
    page.get_by_label("Send at (Europe/Paris time)").fill(when.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_role("status")).to_have_text("Scheduled.")
    expect(page.locator("#digest-status")).to_have_text("scheduled")
    shown = f"Scheduled for {when.strftime('%Y-%m-%d %H:%M')} (Europe/Paris)"
    expect(page.get_by_text(shown)).to_be_visible()
    expect(page.locator("ol.chosen")).to_have_text("Harbour opens")
    check_page(page, "digest-scheduled")

    # Called off, it is a draft again; scheduled anew, beat's tick starts it when due.
    page.get_by_role("button", name="Cancel the schedule").click()
    expect(page.locator("#digest-status")).to_have_text("draft")
    page.get_by_label("Send at (Europe/Paris time)").fill(when.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator("#digest-status")).to_have_text("scheduled")
    started = beat_tick(console, (when - timedelta(minutes=1)).isoformat())
    assert started == []  # a minute early: not yet
    started = beat_tick(console, when.isoformat())
    assert len(started) == 1
    page.reload()
    expect(page.locator("#digest-status")).to_have_text("sending")

    # With two-person approval on, "Send" asks for the send and says so.
    story.write_text("Ferry returns\n\nThe ferry runs again.\n")
    console.cli("stories", "add", str(story), "--list", "morning")
    console.app.stop()
    console.app.env["NEWSLETTER_SEND_APPROVAL"] = "true"
    console.app.start_web()
    page.goto(console.url("/console/digests"))
    page.get_by_role("button", name="Compose").click()
    expect(page.get_by_text("Two-person approval is on")).to_be_visible()
    page.get_by_role("button", name="Request send").click()
    expect(page.get_by_role("status")).to_have_text(
        "Send requested: it waits for another sender or admin to approve it."
    )
    expect(page.locator("#digest-status")).to_have_text("awaiting approval")
    expect(page.get_by_text("Waiting for approval")).to_be_visible()


def beat_tick(console: Console, now: str) -> list[object]:
    """What beat's send tick runs for scheduled sends, at `now`, in the service's env;
    the ranges it would queue are printed instead of queued."""
    code = "\n".join(
        [
            "import json",
            "from datetime import datetime",
            "from newsletter.config import get_settings",
            "from newsletter.sending.later import start_due",
            "got = []",
            f"at = datetime.fromisoformat({now!r})",
            "start_due(get_settings(), lambda d, r: got.append([d, r]), at)",
            "print(json.dumps(got))",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=console.app.env,
        cwd=console.app.workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: list[object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found
