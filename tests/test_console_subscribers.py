"""The subscribers pages in a real browser: finding readers, a reader's consent, adding,
importing a CSV after its dry run, exporting, erasing; a viewer only reads."""

from __future__ import annotations

import csv
import io

from playwright.sync_api import Browser, expect

from tests.console_support import Console, browser, check_page, console, login, new_page

__all__ = ["browser", "console"]  # fixtures

CSV = (
    "email,name\n"
    "bo@example.org,Bo Berg\n"
    "cy@example.org,Cy Chan\n"
    "ana@example.org,Ana\n"
    "not-an-address,Nobody\n"
    "gone@example.org,Gone\n"
)


def test_an_admin_finds_adds_imports_exports_and_erases_readers(
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

    # A reader signs up on the public form: their consent is on record.
    reader = new_page(browser)
    reader.goto(console.url("/subscribe"))
    reader.get_by_label("E-mail address").fill("ana@example.org")
    reader.get_by_label("Name").fill("Ana Lima")
    reader.get_by_role("button", name="Subscribe").click()
    expect(reader.get_by_role("heading", level=1)).not_to_have_text("Subscribe")

    # An operator adds one, then erases them: a wrong address erases nothing.
    page.goto(console.url("/console/subscribers/new"))
    page.get_by_label("E-mail address").fill("Gone@Example.org")
    page.get_by_label("Already confirmed").check()
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("status")).to_have_text("gone@example.org on weekly: confirmed.")
    page.get_by_role("link", name="Erase this reader").click()
    page.get_by_label("Type the address").fill("ana@example.org")
    page.get_by_role("button", name="Erase this reader").click()
    expect(page.get_by_role("alert")).to_have_text(
        "That is not this reader's address exactly: nothing was erased."
    )
    check_page(page, "subscriber-erase")
    page.get_by_label("Type the address").fill("gone@example.org")
    page.get_by_role("button", name="Erase this reader").click()
    expect(page.get_by_role("status")).to_contain_text("The reader was erased")
    expect(page.get_by_role("link", name="gone@example.org")).to_have_count(0)

    # Search by address prefix and by name prefix.
    page.get_by_label("Address or name starts with").fill("AN")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name="ana@example.org")).to_be_visible()
    page.get_by_label("Address or name starts with").fill("ana lim")
    page.get_by_label("Search in").select_option("name")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("row", name="ana@example.org")).to_contain_text("Ana Lima")
    page.get_by_label("Address or name starts with").fill("lima")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No reader whose name starts with")).to_be_visible()
    page.get_by_label("Address or name starts with").fill("")
    page.get_by_role("button", name="Search").click()
    check_page(page, "subscribers")

    page.get_by_role("link", name="ana@example.org").click()
    consent = page.get_by_role("region", name="The Weekly")
    expect(consent).to_contain_text("unconfirmed")
    expect(consent).to_contain_text("form")
    expect(consent).to_contain_text("127.0.0.1")
    expect(consent).to_contain_text("HeadlessChrome")
    check_page(page, "reader")

    # The dry run counts and writes nothing; then the import.
    page.goto(console.url("/console/subscribers/import?list=weekly"))
    page.get_by_label("CSV file").set_input_files(
        {"name": "readers.csv", "mimeType": "text/csv", "buffer": CSV.encode()}
    )
    page.get_by_role("button", name="Dry run").click()
    # Checked on a thread; the page refreshes itself until the summary is there.
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dry run", timeout=30_000)
    expect(page.locator("#count-new")).to_have_text("2")
    expect(page.locator("#count-unchanged")).to_have_text("1")
    expect(page.locator("#count-refused")).to_have_text("1")
    expect(page.locator("#count-invalid")).to_have_text("1")
    expect(page.get_by_text("line 6: gone@example.org: erased")).to_be_visible()
    expect(page.get_by_text("line 5:")).to_be_visible()
    check_page(page, "import-dry-run")
    job = page.url
    page.goto(console.url("/console/subscribers?q=bo"))
    expect(page.get_by_text("No reader whose address starts with")).to_be_visible()
    page.goto(job)
    page.get_by_role("button", name="Import 5 rows").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Imported", timeout=30_000)
    expect(page.locator("#count-new")).to_have_text("2")
    check_page(page, "import-done")
    page.goto(console.url("/console/subscribers?q=bo"))
    expect(page.get_by_role("link", name="bo@example.org")).to_be_visible()

    # The export downloads the list's readers.
    page.get_by_label("List", exact=True).last.select_option("weekly")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    path = download.value.path()
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows[0] == ["email", "name", "status", "confirmed_at"]
    assert sorted(r[0] for r in rows[1:]) == [
        "ana@example.org",
        "bo@example.org",
        "cy@example.org",
    ]
    assert ["bo@example.org", "Bo Berg", "unconfirmed", ""] in rows
    page.goto(console.url("/console/audit?action=subscribers."))
    for action, target in [
        ("subscribers.export", "list weekly"),
        ("subscribers.import", "list weekly"),
        ("subscribers.erase", "address not kept"),
    ]:
        expect(page.get_by_role("row").filter(has_text=action)).to_contain_text(target)

    # A viewer reads, and may not change anything.
    viewer = new_page(browser)
    login(viewer, console, "viewer@example.com")
    viewer.goto(console.url("/console/subscribers"))
    expect(viewer.get_by_role("link", name="ana@example.org")).to_be_visible()
    expect(viewer.get_by_role("link", name="Add a reader")).to_have_count(0)
    expect(viewer.get_by_role("link", name="Import a CSV")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Download CSV")).to_have_count(0)
    viewer.get_by_role("link", name="ana@example.org").click()
    expect(viewer.get_by_text("Consent source")).to_be_visible()
    expect(viewer.get_by_role("link", name="Erase this reader")).to_have_count(0)
    csrf = viewer.locator("input[name=csrf]").first.get_attribute("value") or ""
    refused = viewer.request.post(
        viewer.url + "/erase", form={"csrf": csrf, "typed": "ana@example.org"}
    )
    assert refused.status == 403
    viewer.reload()
    expect(viewer.get_by_role("heading", name="ana@example.org")).to_be_visible()
