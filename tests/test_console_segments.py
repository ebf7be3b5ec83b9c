"""The segments page in a real browser, without JavaScript: an admin saves a segment of
a list and sees its live count; a malformed filter comes back with the message and a
caret under its column; a viewer only reads. axe-core and screenshots at both widths."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.console_support import (
    WIDTHS,
    Console,
    browser,
    check_page,
    console,
    login,
    new_page,
)

__all__ = ["browser", "console"]  # fixtures


def _no_script_page(browser: Browser) -> Page:
    width, height = WIDTHS["desktop"]
    context = browser.new_context(
        viewport={"width": width, "height": height}, java_script_enabled=False
    )
    context.set_default_timeout(15_000)
    return context.new_page()


def test_an_admin_saves_a_segment_and_sees_its_count_without_javascript(
    console: Console, browser: Browser
) -> None:
    console.user("admin@example.com", "admin")
    console.user("viewer@example.com", "viewer")
    console.cli("lists", "create", "news", "--name", "The Newsroom Daily")
    for i, city in enumerate(("Kyiv", "Kyiv", "Lviv", "Kyiv")):
        console.cli("subscribers", "add", f"r{i}@example.org", "--list", "news",
                    "--confirmed", "--attr", f"city={city}")  # fmt: skip
    page = new_page(browser)  # axe needs scripts; the page itself has none
    login(page, console, "admin@example.com")
    page.goto(console.url("/console/lists"))
    page.get_by_role("link", name="Segments").click()
    expect(page.get_by_role("heading", name="Segments", exact=True)).to_be_visible()
    expect(page.get_by_text("No segments yet.")).to_be_visible()

    page.get_by_label("Slug").fill("kyiv")
    page.get_by_label("Name").fill("Readers in Kyiv")
    page.get_by_label("Filter").fill('attributes.city = "Kyiv" and')
    page.get_by_role("button", name="Save segment").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(
        "column 29: expected a condition: attributes.NAME, status, language, timezone, "
        "frequency, signed_up, last_delivery, last_click, in_list, not or '(', found the end"
    )
    expect(page.get_by_label("Filter")).to_have_value('attributes.city = "Kyiv" and')
    expect(page.get_by_label("Filter")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("pre.caret")).to_contain_text(" " * 28 + "^ column 29")
    check_page(page, "segments-error")

    page.get_by_label("Filter").fill('attributes.city = "Kyiv"')
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("status")).to_have_text("Segment kyiv saved.")
    row = page.get_by_role("row", name="Readers in Kyiv")
    expect(row.get_by_role("cell").nth(3)).to_have_text("3")
    expect(row).to_contain_text('attributes.city = "Kyiv"')
    check_page(page, "segments")
    assert console.cli("segments", "count", "kyiv").strip() == "3"

    viewer = _no_script_page(browser)
    login(viewer, console, "viewer@example.com")
    viewer.goto(console.url("/console/segments?list=news"))
    expect(viewer.get_by_role("row", name="Readers in Kyiv")).to_contain_text("3")
    expect(viewer.get_by_role("button", name="Save segment")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Delete segment kyiv")).to_have_count(0)

    page.get_by_role("button", name="Delete segment kyiv").click()
    expect(page.get_by_role("status")).to_have_text("Segment kyiv removed.")
    expect(page.get_by_text("No segments of news yet.")).to_be_visible()

    # The same without JavaScript at all.
    bare = _no_script_page(browser)
    login(bare, console, "admin@example.com")
    bare.goto(console.url("/console/segments?list=news"))
    bare.get_by_label("Slug").fill("lviv")
    bare.get_by_label("Filter").fill('attributes.city = "Lviv" or')
    bare.get_by_role("button", name="Save segment").click()
    expect(bare.get_by_role("alert")).to_contain_text("column 28: expected a condition")
    bare.get_by_label("Filter").fill('attributes.city in ("Lviv", "Odesa")')
    bare.get_by_role("button", name="Save segment").click()
    expect(bare.get_by_role("status")).to_have_text("Segment lviv saved.")
    expect(bare.get_by_role("row", name="lviv").get_by_role("cell").nth(3)).to_have_text("1")
