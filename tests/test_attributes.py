"""Reader attributes on every operator way in (CSV import, `subscribers add --attr`, the
admin API, the console) and list options on the API and the console: one validator
(attributes.clean), one domain function each, nothing half-written on bad input."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from newsletter.cli import main
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import AuditEntry, Subscriber
from newsletter.subscriptions.consent import leave
from newsletter.web.app import create_app
from tests.console_support import Console, browser, check_page, console, login, new_page

__all__ = ["browser", "console"]  # fixtures


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def readers() -> dict[str, dict[str, object]]:
    code, out = cli("subscribers", "list", "--json")
    assert code == 0, out
    return {r["email"]: r for r in json.loads(out)}


def test_csv_columns_beyond_email_and_name_become_attributes(database: str, tmp_path: Path) -> None:
    assert cli("lists", "create", "news", "--name", "News")[0] == 0
    assert cli("subscribers", "add", "left@example.org", "--list", "news", "--confirmed")[0] == 0
    with session_scope() as session:  # the reader leaves by their own link
        reader = session.scalars(select(Subscriber).where(Subscriber.email == "left@example.org"))
        (sub,) = reader.one().subscriptions
        leave(sub, "reader")
    data = tmp_path / "readers.csv"
    data.write_text(
        "email,name,City,plan,language,timezone\n"
        "ana@example.org,Ana,Kyiv,pro,uk,Europe/Kyiv\n"
        "bo@example.org,Bo,,free,,\n"
        "left@example.org,Left,Lviv,pro,,\n",
        encoding="utf-8",
    )
    code, out = cli("subscribers", "import", str(data), "--list", "news", "--confirmed")
    assert code == 0, out
    assert "added 2" in out and "skipped 1" in out  # the reader who left stays left
    found = readers()
    assert found["ana@example.org"]["attributes"] == {"city": "Kyiv", "plan": "pro"}
    assert found["ana@example.org"]["language"] == "uk"
    assert found["ana@example.org"]["timezone"] == "Europe/Kyiv"
    assert found["bo@example.org"]["attributes"] == {"plan": "free"}  # an empty cell: not set
    assert found["left@example.org"]["subscriptions"] == {"news": "unsubscribed"}

    # The export carries them too.
    code, out = cli("subscribers", "export")
    assert code == 0 and out.splitlines()[0].endswith("language,timezone,attributes")
    assert '"{""city"": ""Kyiv"", ""plan"": ""pro""}"' in out


def test_a_bad_header_is_refused_before_anything_is_written(database: str, tmp_path: Path) -> None:
    assert cli("lists", "create", "news", "--name", "News")[0] == 0
    for header, message in [
        ("email,name,home town", "column 3: 'home town' is not an attribute name"),
        ("email,name,status", "column 3: 'status' is not an attribute name"),
        ("email,name,city,City", "column 4: 'city' appears twice"),
    ]:
        data = tmp_path / "bad.csv"
        data.write_text(f"{header}\nana@example.org,Ana,x,y\n", encoding="utf-8")
        for dry in ([], ["--dry-run"]):
            code, out = cli("subscribers", "import", str(data), "--list", "news", *dry)
            assert code == 2 and message in out, out
            assert "Traceback" not in out
    assert readers() == {}


def test_subscribers_add_with_attributes_and_bad_ones(database: str) -> None:
    assert cli("lists", "create", "news", "--name", "News")[0] == 0
    code, out = cli(
        "subscribers",
        "add",
        "ana@example.org",
        "--list",
        "news",
        "--attr",
        "city=Kyiv",
        "--attr",
        "plan=pro",
    )
    assert code == 0, out
    assert readers()["ana@example.org"]["attributes"] == {"city": "Kyiv", "plan": "pro"}
    for attr, message in [("City Name=x", "not an attribute name"), ("city", "NAME=VALUE")]:
        code, out = cli("subscribers", "add", "bo@example.org", "--list", "news", "--attr", attr)
        assert code == 2 and message in out and len(out.strip().splitlines()) == 1
    assert "bo@example.org" not in readers()
    code, out = cli(
        "subscribers", "attributes", "ana@example.org", "--set", "n=3", "--unset", "plan"
    )
    assert code == 0 and out.split() == ["city=Kyiv", "n=3"]


def test_the_api_merges_validates_and_replaces_attributes(database: str) -> None:
    client = TestClient(create_app())
    auth = {"Authorization": f"Bearer {get_settings().admin}"}
    made = client.post(
        "/api/lists",
        json={
            "slug": "news",
            "name": "News",
            "options": {
                "welcome": True,
                "local_time": "07:00",
                "track_clicks": True,
                "form_fields": [{"name": "city", "label": "Your city", "required": True}],
            },
        },
        headers=auth,
    )
    assert made.status_code == 201, made.text
    assert made.json()["local_time"] == "07:00" and made.json()["welcome"] is True
    bad = client.patch(
        "/api/lists/news", json={"options": {"weekly": "every friday"}}, headers=auth
    )
    assert bad.status_code == 422 and "cron" in bad.json()["detail"][0]["message"]
    changed = client.patch(
        "/api/lists/news", json={"options": {"local_time": "", "sunset_after": 5}}, headers=auth
    )
    assert changed.status_code == 200 and "local_time" not in changed.json()
    assert changed.json()["sunset_after"] == 5 and changed.json()["track_clicks"] is True

    added = client.post(
        "/api/subscribers",
        json={
            "email": "ana@example.org",
            "list": "news",
            "confirmed": True,
            "attributes": {"city": "Kyiv", "age": 31},
        },
        headers=auth,
    )
    assert added.status_code == 201, added.text
    merged = client.patch(
        "/api/subscribers/ana@example.org",
        json={"attributes": {"plan": "pro", "age": None, "vip": True}},
        headers=auth,
    )
    assert merged.status_code == 200
    assert merged.json()["attributes"] == {"city": "Kyiv", "plan": "pro", "vip": True}
    for body, message in [
        ({"attributes": {"tags": ["a", "b"]}}, "not a list or object"),
        ({"attributes": {"bio": "x" * 501}}, "longer than 500 characters"),
        ({"attributes": {f"a{i}": "x" * 100 for i in range(45)}}, "4096 bytes"),
        ({"attributes": {"Bad Name": 1}}, "not an attribute name"),
    ]:
        refused = client.patch("/api/subscribers/ana@example.org", json=body, headers=auth)
        assert refused.status_code == 400, refused.text
        assert message in refused.json()["detail"][0]["message"]
    assert (
        client.patch(
            "/api/subscribers/nobody@example.org", json={"attributes": {}}, headers=auth
        ).status_code
        == 404
    )
    replaced = client.patch(
        "/api/subscribers/ana@example.org",
        json={"attributes": {"city": "Lviv"}, "replace": True},
        headers=auth,
    )
    assert replaced.json()["attributes"] == {"city": "Lviv"}
    listed = client.get("/api/subscribers", headers=auth).json()
    assert listed[0]["attributes"] == {"city": "Lviv"} and "language" in listed[0]
    with session_scope() as session:
        assert session.query(AuditEntry).filter_by(action="subscribers.attributes").count() == 2


def test_an_admin_edits_attributes_list_options_and_webhooks_in_the_console(
    console: Console, browser: Browser
) -> None:
    console.user("admin@example.com", "admin")
    console.cli("lists", "create", "news", "--name", "News")
    console.cli(
        "subscribers",
        "add",
        "ana@example.org",
        "--list",
        "news",
        "--confirmed",
        "--attr",
        "city=Kyiv",
    )
    page = new_page(browser)
    login(page, console, "admin@example.com")

    # A reader's attributes: shown, a bad value refused on the page, a good one saved.
    page.goto(console.url("/console/subscribers"))
    page.get_by_role("link", name="ana@example.org").first.click()
    expect(page.locator("dl.attributes")).to_contain_text("Kyiv")
    box = page.get_by_label("Attributes as a JSON object")
    box.fill('{"city": "Lviv", "tags": ["a"]}')
    page.get_by_role("button", name="Save attributes").click()
    expect(page.get_by_role("alert")).to_contain_text("not a list or object")
    expect(box).to_have_value('{"city": "Lviv", "tags": ["a"]}')  # what was typed stays
    check_page(page, "reader-attributes-error")
    box.fill('{"city": "Lviv", "plan": "pro"}')
    page.get_by_role("button", name="Save attributes").click()
    expect(page.get_by_role("status")).to_have_text("Attributes saved.")
    expect(page.locator("dl.attributes")).to_contain_text("Lviv")
    expect(page.locator("dl.attributes")).to_contain_text("pro")
    check_page(page, "reader-attributes")
    assert json.loads(console.cli("subscribers", "list", "--json"))[0]["attributes"] == {
        "city": "Lviv",
        "plan": "pro",
    }

    # The list form: audience options, a bad one refused with the reason.
    page.goto(console.url("/console/lists/news/edit"))
    page.get_by_label("Mail a welcome after confirmation").check()
    page.get_by_label("Deliver at the reader's local time (HH:MM)").fill("07:30")
    page.get_by_label("Weekly round-up (cron)").fill("not cron")
    page.get_by_label("Extra sign-up fields").fill("city:Your city!\nplan")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("not a cron expression")
    check_page(page, "list-options-error")
    page.get_by_label("Weekly round-up (cron)").fill("0 8 * * 6")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("List news saved.")
    expect(page.get_by_role("table")).to_contain_text("welcome, at 07:30 local, weekly")
    check_page(page, "lists-options")
    record = json.loads(console.cli("lists", "list", "--json"))[0]
    assert record["form_fields"] == [
        {"name": "city", "label": "Your city", "required": True},
        {"name": "plan", "label": "plan", "required": False},
    ]
    page.goto(console.url("/console/lists/news/edit"))
    expect(page.get_by_label("Extra sign-up fields")).to_have_value("city:Your city!\nplan")

    # Webhooks: add (the secret once), see the log, remove.
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("Address (http or https)").fill("http://127.0.0.1:9/hook")
    page.get_by_label("bounced").uncheck()
    page.get_by_role("button", name="Add webhook").click()
    secret = page.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_") and len(secret) == 70
    check_page(page, "webhook-secret")
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("table")).not_to_contain_text("bounced")
    assert secret not in page.content()
    check_page(page, "webhooks")
    page.get_by_role("link", name="http://127.0.0.1:9/hook").click()
    expect(page.get_by_text("No deliveries yet.")).to_be_visible()
    check_page(page, "webhook-log")
    page.goto(console.url("/console/webhooks"))
    page.get_by_label("Address (http or https)").fill("ftp://127.0.0.1/x")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.get_by_role("alert")).to_contain_text("http:// or https://")
    page.get_by_role("button", name="Remove the webhook to http://127.0.0.1:9/hook").click()
    expect(page.get_by_role("status")).to_contain_text("Removed the webhook")
    assert json.loads(console.cli("webhooks", "list", "--json")) == []
