"""The lists page in a real browser: an admin creates, edits and deletes a list; a viewer
only reads."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.console_support import Console, browser, check_page, console, login, new_page

__all__ = ["browser", "console"]  # fixtures


def test_an_admin_creates_edits_and_deletes_a_list_and_a_viewer_only_reads(
    console: Console, browser: Browser
) -> None:
    console.user("admin@example.com", "admin")
    console.user("viewer@example.com", "viewer")
    page = new_page(browser)
    login(page, console, "admin@example.com")
    page.goto(console.url("/console/lists/new"))
    page.get_by_label("Slug").fill("weekly")
    page.get_by_label("Name").fill("The Weekly")
    page.get_by_role("button", name="Create list").click()
    page.goto(console.url("/console/subscribers/new"))
    page.get_by_label("E-mail address").fill("ana@example.org")
    page.get_by_label("Already confirmed").check()
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("status")).to_contain_text("ana@example.org on weekly: confirmed")

    console.cli("stats", "refresh")  # what beat does every few minutes
    page.goto(console.url("/console/lists"))
    row = page.get_by_role("row", name="The Weekly")
    expect(row.get_by_role("cell").nth(2)).to_have_text("1")  # one confirmed reader
    check_page(page, "lists")

    page.get_by_role("link", name="New list").click()
    page.get_by_label("Slug").fill("morning")
    page.get_by_label("Name").fill("Morning Briefing")
    page.get_by_label("Schedule (cron)").fill("not cron")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Create list").click()
    expect(page.get_by_role("alert")).to_contain_text("is not a cron expression")
    page.get_by_label("Schedule (cron)").fill("0 6 * * *")
    page.get_by_role("button", name="Create list").click()
    expect(page.get_by_role("status")).to_have_text("List morning created.")
    expect(page.get_by_role("row", name="Morning Briefing")).to_contain_text("Europe/Paris")

    page.get_by_role("link", name="Edit morning").click()
    check_page(page, "list-edit")
    page.get_by_label("Schedule (cron)").fill("30 6 * * 1-5")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row", name="Morning Briefing")).to_contain_text("30 6 * * 1-5")
    page.get_by_role("link", name="Edit morning").click()
    expect(page.get_by_label("Schedule (cron)")).to_have_value("30 6 * * 1-5")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Paris")
    page.goto(console.url("/console/lists"))

    page.get_by_role("link", name="Delete morning").click()
    page.get_by_label("Type the slug").fill("weekly")
    page.get_by_role("button", name="Delete this list").click()
    expect(page.get_by_role("alert")).to_contain_text("nothing was deleted")
    page.get_by_label("Type the slug").fill("morning")
    page.get_by_role("button", name="Delete this list").click()
    expect(page.get_by_role("status")).to_contain_text("List morning deleted")
    expect(page.get_by_role("row", name="Morning Briefing")).to_have_count(0)

    viewer = new_page(browser)
    login(viewer, console, "viewer@example.com")
    viewer.goto(console.url("/console/lists"))
    expect(viewer.get_by_role("row", name="The Weekly")).to_be_visible()
    expect(viewer.get_by_role("link", name="New list")).to_have_count(0)
    expect(viewer.get_by_role("link", name="Delete weekly")).to_have_count(0)
    csrf = viewer.locator("input[name=csrf]").first.get_attribute("value")
    refused = viewer.request.post(
        console.url("/console/lists/weekly/delete"), form={"csrf": csrf or "", "typed": "weekly"}
    )
    assert refused.status == 403
    viewer.reload()
    expect(viewer.get_by_role("row", name="The Weekly")).to_be_visible()
