"""Logging in and out of the console in a real browser, on the embedded default."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.console_support import Console, browser, check_page, console, login, new_page

__all__ = ["browser", "console"]  # fixtures


def test_a_person_logs_in_sees_the_console_and_logs_out(console: Console, browser: Browser) -> None:
    console.user("desk@example.com", "viewer")
    page = new_page(browser)
    page.goto(console.url("/console"))
    expect(page).to_have_url(console.url("/console/login"))
    check_page(page, "login")

    page.get_by_label("E-mail address").fill("desk@example.com")
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("wrong e-mail address or password")

    login(page, console, "desk@example.com")
    expect(page.get_by_text("desk@example.com (viewer)")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "nl_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(console.url("/console/login"))
    # The cookie from before the logout opens nothing any more.
    page.context.add_cookies([cookie])
    page.goto(console.url("/console"))
    expect(page).to_have_url(console.url("/console/login"))
