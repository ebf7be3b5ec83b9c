"""The stories pages in a real browser: add by paste and by upload, edit, delete."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.console_support import Console, browser, check_page, console, login, new_page

__all__ = ["browser", "console"]  # fixtures


def test_an_editor_adds_edits_uploads_and_deletes_stories(
    console: Console, browser: Browser, tmp_path: Path
) -> None:
    console.cli("lists", "create", "morning", "--name", "Morning Brief")
    console.user("editor@example.com", "editor")
    page = new_page(browser)
    login(page, console, "editor@example.com")
    page.goto(console.url("/console/stories"))
    expect(page.get_by_role("heading", name="Stories", exact=True)).to_be_visible()

    # Paste: a headline and Markdown text, for one list.
    page.get_by_label("Headline").fill("Bridge reopens <after> repairs")
    page.get_by_label("Text").fill(
        "The river bridge is open again.\n\nCrews finished **early**:\n\n- lanes\n- paths"
    )
    page.locator("#paste-list").select_option("morning")
    page.get_by_role("button", name="Add story").click()
    expect(page.get_by_role("status")).to_contain_text("Added “Bridge reopens <after> repairs”")
    expect(page.get_by_role("heading", level=1)).to_have_text("Bridge reopens <after> repairs")
    expect(page.get_by_label("Lede")).to_have_value("The river bridge is open again.")
    check_page(page, "story-edit")

    # Edit: headline, lede and section.
    page.get_by_label("Headline").fill("Bridge reopens after repairs")
    page.get_by_label("Lede").fill("The river bridge opened at dawn.")
    page.get_by_label("Section").fill("Local")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Bridge reopens after repairs")
    expect(page.get_by_label("Lede")).to_have_value("The river bridge opened at dawn.")
    expect(page.get_by_label("Section")).to_have_value("Local")

    # Upload a Markdown story file, as `stories add` takes it.
    story = tmp_path / "council.md"
    story.write_text("---\ntitle: Council sets budget\n---\n\nThe council agreed a budget.\n")
    page.goto(console.url("/console/stories"))
    page.get_by_text("Add a story").click()  # folded away once there are stories
    page.get_by_label("File (.txt, .md or .json)").set_input_files(str(story))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Council sets budget")

    # A file of another kind is refused with a reason.
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"\x89PNG")
    page.goto(console.url("/console/stories"))
    page.get_by_text("Add a story").click()
    page.get_by_label("File (.txt, .md or .json)").set_input_files(str(bad))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("Upload a .txt, .md or .json story file.")).to_be_visible()

    # The list, latest first, filtered by list.
    page.goto(console.url("/console/stories?list=morning"))
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Council sets budget")
    expect(rows.nth(1)).to_contain_text("Bridge reopens after repairs")
    page.get_by_text("Add a story").click()
    check_page(page, "stories")

    # Delete, after a confirmation page.
    page.get_by_role("link", name="Council sets budget").click()
    page.get_by_role("link", name="Delete this story…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete “Council sets budget”?")
    page.get_by_role("button", name="Delete story").click()
    expect(page.get_by_role("status")).to_have_text("Deleted “Council sets budget”.")
    expect(page.locator("tbody tr")).to_have_count(1)


def test_a_viewer_reads_stories_but_cannot_change_them(console: Console, browser: Browser) -> None:
    console.cli("lists", "create", "morning", "--name", "Morning Brief")
    console.user("viewer@example.com", "viewer")
    story = console.app.workdir / "story.txt"
    story.write_text("Harbour opens\n\nThe harbour opened today.\n")
    console.cli("stories", "add", str(story), "--list", "morning")
    page = new_page(browser)
    login(page, console, "viewer@example.com")
    page.goto(console.url("/console/stories"))
    expect(page.get_by_role("button", name="Add story")).to_have_count(0)
    page.get_by_role("link", name="Harbour opens").click()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    expect(page.get_by_text("The harbour opened today.")).to_be_visible()
    # The change itself is refused, whatever the page shows.
    response = page.request.post(
        console.url(page.url.removeprefix(console.base)),
        form={"title": "Changed", "csrf": "x"},
    )
    assert response.status == 403
