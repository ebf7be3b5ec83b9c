"""The audit log page: what was done from the console, the CLI and the API, each under
the right person and face; newest first, filtered, paged by keyset."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect

from newsletter import audit
from newsletter.db import session_scope
from tests.console_support import (
    PASSWORD,
    Console,
    browser,
    check_page,
    console,
    login,
    new_page,
)

__all__ = ["browser", "console"]  # fixtures


def test_console_cli_and_api_actions_appear_with_who_and_how(
    console: Console, browser: Browser
) -> None:
    console.user("chief@example.com", "admin")
    console.cli("lists", "create", "news", "--name", "The News")
    token = console.cli("users", "token", "chief@example.com").strip()
    made = httpx.post(
        console.url("/api/lists"),
        json={"slug": "sports", "name": "Sports"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201, made.text

    page = new_page(browser)
    login(page, console, "chief@example.com")
    page.goto(console.url("/console/users"))
    page.get_by_label("E-mail address").fill("reader.desk@example.com")
    page.get_by_label("Password (at least 12 characters)").fill(PASSWORD)
    page.get_by_label("The password again").fill(PASSWORD)
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_contain_text("Created reader.desk@example.com")

    page.get_by_role("link", name="Audit log").click()
    rows = page.get_by_role("row")
    console_row = rows.filter(has_text="users.create").filter(has_text="reader.desk@example.com")
    expect(console_row).to_have_count(1)
    expect(console_row.get_by_role("cell").nth(1)).to_have_text("chief@example.com")
    expect(console_row.get_by_role("cell").nth(2)).to_have_text("console")

    api_row = rows.filter(has_text="lists.create").filter(has_text="list sports")
    expect(api_row.get_by_role("cell").nth(1)).to_have_text("chief@example.com")
    expect(api_row.get_by_role("cell").nth(2)).to_have_text("api")

    cli_row = rows.filter(has_text="lists.create").filter(has_text="list news")
    expect(cli_row.get_by_role("cell").nth(1)).to_have_text(re.compile(r"^cli:"))
    expect(cli_row.get_by_role("cell").nth(2)).to_have_text("cli")
    # The token itself is never in the log, only that one was made.
    expect(rows.filter(has_text="users.token")).to_have_count(1)
    assert token not in page.content()
    # Newest first: the console's change is on top (after the login that preceded it).
    expect(rows.nth(1)).to_contain_text("users.create")
    check_page(page, "audit")

    page.get_by_label("Action starts with").fill("lists")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row")).to_have_count(3)  # the header and two lists
    api_row.get_by_role("link", name="chief@example.com").click()
    expect(page.get_by_label("Who (exact)")).to_have_value("chief@example.com")
    expect(page.get_by_role("row")).to_have_count(2)
    expect(page.get_by_role("row").nth(1)).to_contain_text("list sports")


def test_the_log_pages_back_by_keyset_and_filters_by_prefix(sqlite_db: str) -> None:
    from newsletter.accounts import actions as accounts
    from newsletter.web.app import create_app
    from workers.gateway import perform

    owner = audit.Actor("cli:desk", "cli", "owner")
    with audit.acting_as(owner):
        perform(accounts.create_user, "chief@example.com", "owner", PASSWORD)
    with session_scope() as session, audit.acting_as(owner):
        for n in range(120):
            audit.record(session, "sends.pause" if n % 2 else "lists.update", f"item {n}")
    client = TestClient(create_app(), raise_server_exceptions=False)
    form = client.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    client.post(
        "/console/login",
        data={"email": "chief@example.com", "password": PASSWORD, "csrf": csrf.group(1)},
    )

    def targets(html: str) -> list[str]:
        return re.findall(r'<td class="target">([^<]+?)\s*(?:<|$)', html)

    first = client.get("/console/audit?action=sends")
    assert first.status_code == 200
    shown = targets(first.text)
    assert shown == [f"item {n}" for n in range(119, 19, -2)]  # 50, newest first
    older = re.search(r'href="/console/audit\?([^"]+)" rel="next"', first.text)
    assert older
    second = client.get("/console/audit?" + older.group(1).replace("&amp;", "&"))
    assert targets(second.text) == [f"item {n}" for n in range(19, 0, -2)]
    assert 'rel="next"' not in second.text
    assert client.get("/console/audit?action=sends%25").text.count('class="target"') == 0
    assert client.get("/console/audit?before=0").status_code == 422
