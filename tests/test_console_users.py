"""Users in the console, in a real browser: an admin adds an editor and disables them
(their open session ends at the next click); an API token is shown once."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Browser, expect

from tests.console_support import Console, browser, check_page, console, login, new_page

__all__ = ["browser", "console"]  # fixtures

EDITOR_PASSWORD = "the editor's own password"


def test_an_admin_adds_an_editor_who_logs_in_until_disabled(
    console: Console, browser: Browser
) -> None:
    console.user("chief@example.com", "admin")
    admin = new_page(browser)
    login(admin, console, "chief@example.com")
    admin.get_by_role("link", name="Users", exact=True).click()
    expect(admin.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    expect(admin.get_by_role("cell", name="chief@example.com")).to_be_visible()

    admin.get_by_label("E-mail address").fill("ed@example.com")
    admin.get_by_label("Role", exact=True).select_option("editor")
    admin.get_by_label("Password (at least 12 characters)").fill(EDITOR_PASSWORD)
    admin.get_by_label("The password again").fill(EDITOR_PASSWORD + " typo")
    admin.get_by_role("button", name="Create user").click()
    expect(admin.get_by_role("alert")).to_have_text("the two passwords are not the same")
    expect(admin.get_by_label("E-mail address")).to_have_value("ed@example.com")
    check_page(admin, "users")

    admin.get_by_label("Password (at least 12 characters)").fill(EDITOR_PASSWORD)
    admin.get_by_label("The password again").fill(EDITOR_PASSWORD)
    admin.get_by_role("button", name="Create user").click()
    expect(admin.get_by_role("status")).to_have_text("Created ed@example.com (editor).")
    # An admin may not make an owner: the choice is not offered, and the domain says no.
    expect(admin.get_by_label("New role").locator("option")).to_have_text(
        ["viewer", "editor", "sender", "admin"]
    )

    editor = new_page(browser)
    login(editor, console, "ed@example.com", EDITOR_PASSWORD)
    expect(editor.get_by_text("ed@example.com (editor)")).to_be_visible()
    expect(editor.get_by_role("link", name="Users", exact=True)).to_have_count(0)
    editor.goto(console.url("/console/users"))
    expect(editor.get_by_text("Your role (editor) may not do this")).to_be_visible()
    editor.goto(console.url("/console"))  # the editor's page stays open meanwhile

    admin.reload()
    expect(admin.get_by_role("definition").first).to_have_text("editor")
    check_page(admin, "users-user")
    admin.get_by_role("button", name="Disable ed@example.com").click()
    expect(admin.get_by_role("status")).to_contain_text("ed@example.com is disabled")
    expect(admin.get_by_role("button", name="Enable ed@example.com")).to_be_visible()

    editor.get_by_role("link", name="Stories").click()
    expect(editor).to_have_url(re.compile(r"/console/login"))
    editor.get_by_label("E-mail address").fill("ed@example.com")
    editor.get_by_label("Password").fill(EDITOR_PASSWORD)
    editor.get_by_role("button", name="Log in").click()
    expect(editor.get_by_role("alert")).to_have_text("wrong e-mail address or password")

    admin.get_by_role("link", name="Users", exact=True).click()
    row = admin.get_by_role("row", name=re.compile("ed@example.com"))
    expect(row).to_contain_text("disabled")


def test_an_api_token_is_shown_once_and_can_be_revoked(console: Console, browser: Browser) -> None:
    console.user("desk@example.com", "sender")
    page = new_page(browser)
    login(page, console, "desk@example.com")
    page.get_by_role("link", name="desk@example.com").click()  # one's own name, at the top
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account: desk@example.com")
    expect(page.get_by_text("No API tokens yet.")).to_be_visible()
    check_page(page, "users-me")

    page.get_by_role("button", name="New API token").click()
    expect(page.get_by_role("alert")).to_contain_text("shown only this once")
    token = page.get_by_label("API token").input_value()
    assert token.startswith("nlt_")
    check_page(page, "users-token")
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(console.url("/api/lists"), headers=bearer).status_code == 200

    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("cell", name=token[:12] + "…")).to_be_visible()
    assert token not in page.content()
    page.reload()
    assert token not in page.content()

    page.get_by_role("button", name=f"Revoke token {token[:12]}").click()
    expect(page.get_by_role("status")).to_have_text("The token is revoked.")
    expect(page.get_by_role("row", name=re.compile(re.escape(token[:12])))).to_contain_text(
        "revoked"
    )
    assert httpx.get(console.url("/api/lists"), headers=bearer).status_code == 401
