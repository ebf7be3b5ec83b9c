"""The preference centre as a reader meets it: the page from a mail's link, saving lists,
frequency, name and language, leaving (and the next digest not coming), joining through
a new confirmation, the data download, erasure, and the link asked for by address."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Subscriber, Subscription
from newsletter.subscriptions.consent import ConsentRecord, subscribe
from newsletter.subscriptions.lists import Options, create_list
from newsletter.subscriptions.preferences import link_token
from newsletter.subscriptions.tokens import make_preferences_token
from tests.services import SmtpServer

READER = "ana@example.org"


@pytest.fixture
def eager(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    from workers.app import app as celery_app

    celery_app.conf.task_always_eager = True
    try:
        yield smtp_server
    finally:
        celery_app.conf.task_always_eager = False


@pytest.fixture
def web(database: str) -> Iterator[TestClient]:
    from newsletter.web.app import create_app

    with TestClient(create_app()) as client:
        yield client


def add(email: str, slug: str, *, confirmed: bool = True, language: str | None = None) -> int:
    with session_scope() as session:
        result = subscribe(
            session,
            get_settings(),
            email=email,
            name="Ana",
            list_slug=slug,
            consent=ConsentRecord(source="admin"),
            confirmed=confirmed,
            language=language,
        )
        assert result.subscription_id is not None
        return result.subscription_id


@pytest.fixture
def lists(web: TestClient) -> dict[str, int]:
    """Ana on "morning" (which offers a weekly round-up); "evening" she is not on."""
    with session_scope() as session:
        settings = get_settings()
        create_list(
            session,
            "morning",
            "Morning Briefing",
            settings=settings,
            options=Options(weekly="0 8 * * 1"),
        )
        create_list(session, "evening", "Evening Edition", settings=settings)
    return {"morning": add(READER, "morning")}


def states(email: str = READER) -> dict[str, tuple[str, str]]:
    with session_scope() as session:
        rows = session.execute(
            select(Subscription).join(Subscriber).where(Subscriber.email == email)
        ).scalars()
        return {s.mailing_list.slug: (s.status, s.frequency) for s in rows}


def reader(email: str = READER) -> Subscriber | None:
    with session_scope() as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == email))
        if found is not None:
            session.expunge(found)
        return found


def page_path(subscription_id: int) -> str:
    return f"/preferences/{make_preferences_token(get_settings().secret, subscription_id)}"


def form_of(html: str) -> dict[str, str]:
    """What a browser would submit from the page's main form as it is shown."""
    form = html.split('<form method="post" action="/preferences/', 1)[1].split("</form>", 1)[0]
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name is None:
            continue
        kind = re.search(r'type="([^"]+)"', tag)
        if kind and kind.group(1) in ("checkbox", "radio") and " checked" not in tag:
            continue
        fields[name.group(1)] = value.group(1) if value else ""
    chosen = re.search(r'<option value="([^"]+)"[^>]*selected', form)
    if chosen:
        fields["language"] = chosen.group(1)
    return fields


def test_the_page_shows_every_list_and_the_reader(web: TestClient, lists: dict[str, int]):
    page = web.get(page_path(lists["morning"]))
    assert page.status_code == 200
    assert READER in page.text and 'value="Ana"' in page.text
    assert "Morning Briefing" in page.text and "Evening Edition" in page.text
    assert "A weekly round-up" in page.text  # morning offers it; she is on it
    fields = form_of(page.text)
    assert fields["list.morning"] == "1" and "list.evening" not in fields
    assert fields["frequency.morning"] == "every"
    assert page.headers["Cache-Control"] == "no-store"
    # A GET changes nothing.
    assert states() == {"morning": ("confirmed", "every")}


def test_saving_changes_frequency_name_and_language(web: TestClient, lists: dict[str, int]):
    path = page_path(lists["morning"])
    fields = form_of(web.get(path).text)
    fields.update({"frequency.morning": "weekly", "name": "Ana Lima", "language": "uk"})
    saved = web.post(path, data=fields)
    assert saved.status_code == 200
    assert states() == {"morning": ("confirmed", "weekly")}
    found = reader()
    assert found is not None and found.name == "Ana Lima" and found.language == "uk"
    # The page now speaks the reader's language and shows what she chose.
    assert 'lang="uk"' in saved.text and "Ваш вибір збережено." in saved.text
    again = form_of(web.get(path).text)
    assert again["frequency.morning"] == "weekly" and again["name"] == "Ana Lima"


def test_leaving_from_the_page_and_joining_needs_a_confirmation(
    eager: SmtpServer, web: TestClient, lists: dict[str, int]
):
    path = page_path(lists["morning"])
    fields = form_of(web.get(path).text)
    del fields["list.morning"]  # unticked
    fields["list.evening"] = "1"  # ticked
    saved = web.post(path, data=fields)
    assert saved.status_code == 200
    assert "You left: Morning Briefing." in saved.text
    assert "Evening Edition" in saved.text and "confirm" in saved.text
    assert states() == {"morning": ("unsubscribed", "every"), "evening": ("unconfirmed", "every")}
    with session_scope() as session:
        sub = session.get(Subscription, lists["morning"])
        assert sub is not None and sub.unsubscribe_reason == "reader"
    (mail,) = eager.to(READER)
    assert "Evening Edition" in mail.message["Subject"]  # the double opt-in, nothing else


def test_a_stale_page_does_not_undo_what_the_reader_did_elsewhere(
    web: TestClient, lists: dict[str, int]
):
    path = page_path(lists["morning"])
    stale = form_of(web.get(path).text)  # shows morning ticked
    unsubscribe = web.post(f"/unsubscribe/{_unsubscribe_token(lists['morning'])}")
    assert unsubscribe.status_code == 200
    stale["name"] = "Ana L."
    assert web.post(path, data=stale).status_code == 200  # still ticked on the old page
    assert states()["morning"][0] == "unsubscribed"


def _unsubscribe_token(subscription_id: int) -> str:
    from newsletter.subscriptions.tokens import make_unsubscribe_token

    return make_unsubscribe_token(get_settings().secret, subscription_id)


def test_leaving_from_the_page_stops_the_next_digest(web: TestClient, lists: dict[str, int]):
    from datetime import timedelta

    from newsletter.digests.compose import compose_digest
    from newsletter.models import Delivery, MailingList, utcnow
    from newsletter.sending.job import start_send
    from newsletter.stories.drafts import StoryDraft
    from newsletter.stories.store import store_stories

    add("bo@example.org", "morning")
    path = page_path(lists["morning"])
    fields = form_of(web.get(path).text)
    del fields["list.morning"]
    assert web.post(path, data=fields).status_code == 200

    settings = get_settings()
    with session_scope() as session:
        store_stories(
            session,
            [
                StoryDraft(
                    "Rain",
                    "Rain: the lede.",
                    [],
                    source="r",
                    published_at=utcnow() - timedelta(minutes=1),
                )
            ],
        )
    with session_scope() as session:
        mlist = session.scalar(select(MailingList).where(MailingList.slug == "morning"))
        digest = compose_digest(session, settings, mlist)
        start_send(session, settings, digest)
        ledger = set(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.digest_id == digest.id)
            )
        )
    assert ledger == {"bo@example.org"}  # the next digest goes to Bo, not to Ana


def test_a_post_without_the_page_s_csrf_token_changes_nothing(
    web: TestClient, lists: dict[str, int]
):
    path = page_path(lists["morning"])
    fields = form_of(web.get(path).text)
    del fields["list.morning"]
    fields["csrf_token"] = "forged"
    answer = web.post(path, data=fields)
    assert answer.status_code == 403
    assert states()["morning"][0] == "confirmed"


def test_a_bad_value_is_a_400_with_the_message(web: TestClient, lists: dict[str, int]):
    path = page_path(lists["morning"])
    fields = form_of(web.get(path).text)
    fields["language"] = "xx"
    answer = web.post(path, data=fields)
    assert answer.status_code == 400 and "is not one of en, uk" in answer.text
    assert reader().language is None


@pytest.mark.parametrize(
    "path",
    [
        "/preferences/p2.1.AAAAAAAAAAAAAAAAAAAAAA",
        "/preferences/nonsense",
        "/preferences/t.WzEsMV0.forged",
        "/preferences/p2.999.AAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_a_bad_token_is_a_404_page(web: TestClient, lists: dict[str, int], path: str):
    answer = web.get(path)
    assert answer.status_code == 404
    assert "Link not valid" in answer.text and "Traceback" not in answer.text


def test_the_data_download_holds_what_is_stored(web: TestClient, lists: dict[str, int]):
    with session_scope() as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == READER))
        assert found is not None
        found.attributes = {"city": "Lviv"}
        found.timezone = "Europe/Kyiv"
    path = page_path(lists["morning"])
    token = form_of(web.get(path).text)["csrf_token"]
    answer = web.post(path + "/export", data={"csrf_token": token})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert "attachment" in answer.headers["content-disposition"]
    data = json.loads(answer.text)
    assert data["subscriber"]["email"] == READER and data["subscriber"]["name"] == "Ana"
    assert data["subscriber"]["timezone"] == "Europe/Kyiv"
    assert data["attributes"] == {"city": "Lviv"}
    (sub,) = data["subscriptions"]
    assert sub["list"] == "morning" and sub["status"] == "confirmed"
    assert sub["consent"]["source"] == "admin"
    assert data["deliveries"]["total"] == 0
    assert web.post(path + "/export", data={"csrf_token": "x"}).status_code == 403


def test_erase_asks_first_then_removes_the_reader(web: TestClient, lists: dict[str, int]):
    path = page_path(lists["morning"])
    ask = web.get(path + "/erase")
    assert ask.status_code == 200 and "Yes, erase me" in ask.text
    assert reader() is not None  # the GET only asks
    token = re.search(r'name="csrf_token" value="([^"]+)"', ask.text).group(1)
    done = web.post(path + "/erase", data={"csrf_token": token})
    assert done.status_code == 200 and "Your data is erased" in done.text
    assert reader() is None
    assert web.get(path).status_code == 404  # the link leads nowhere now


# The link asked for by address --------------------------------------------------------------


def _ask(web: TestClient, email: str) -> str:
    form = web.get("/preferences")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    answer = web.post("/preferences", data={"email": email, "csrf_token": token})
    assert answer.status_code == 200
    return answer.text


def test_asking_by_address_answers_the_same_and_mails_only_a_known_reader(
    eager: SmtpServer, web: TestClient, lists: dict[str, int]
):
    known = _ask(web, "Ana@Example.org")
    unknown = _ask(web, "nobody@example.org")
    malformed = _ask(web, "not an address")
    assert known == unknown == malformed
    assert "If we know this address" in known
    assert eager.to("nobody@example.org") == []
    (mail,) = eager.to(READER)
    text = mail.message.get_body(("plain",)).get_content()
    link = re.search(r"(/preferences/t\.\S+)", text).group(1)
    assert "one hour" in text
    page = web.get(link)
    assert page.status_code == 200 and READER in page.text


def test_the_asked_for_link_expires_after_an_hour(web: TestClient, lists: dict[str, int]):
    with session_scope() as session:
        sid = session.scalar(select(Subscriber.id).where(Subscriber.email == READER))
    secret = get_settings().secret
    fresh = link_token(secret, sid, now=time.time() - 3500)
    old = link_token(secret, sid, now=time.time() - 3700)
    assert web.get(f"/preferences/{fresh}").status_code == 200
    expired = web.get(f"/preferences/{old}")
    assert expired.status_code == 410 and "/preferences" in expired.text
    fields = form_of(web.get(f"/preferences/{fresh}").text)
    del fields["list.morning"]
    assert web.post(f"/preferences/{old}", data=fields).status_code == 410
    assert states()["morning"][0] == "confirmed"


def test_asking_by_address_is_rate_limited(
    eager: SmtpServer, web: TestClient, lists: dict[str, int], monkeypatch: pytest.MonkeyPatch
):
    limit = get_settings().subscribe_limit_address
    for _ in range(limit):
        _ask(web, READER)
    over = _ask(web, READER)
    assert "If we know this address" in over  # the same page ...
    assert len(eager.to(READER)) == limit  # ... and no more mail to that mailbox
    # And one internet address cannot go through addresses without end.
    form = web.get("/preferences")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    answers = [
        web.post("/preferences", data={"email": f"x{i}@example.org", "csrf_token": token})
        for i in range(get_settings().subscribe_limit_ip)
    ]
    assert answers[-1].status_code == 429 and "Slow down" in answers[-1].text


# In a real browser: axe-core and screenshots at desktop and phone width ---------------------


@pytest.mark.timeout(300)
def test_the_preference_pages_in_a_browser(tmp_path: Path, smtp_server: SmtpServer):
    """`newsletter web` as a process in Chromium: the pages pass axe-core at 1280 and
    390 px (screenshots in test-output/preferences/), and saving works with scripts off."""
    from playwright.sync_api import sync_playwright

    from tests.console_support import CHROMIUM, WIDTHS, Console, console_env
    from tests.services import AppProcesses, unavailable

    if not CHROMIUM.exists():
        unavailable("Debian's Chromium", f"no {CHROMIUM}", "apt-get install chromium")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    app = AppProcesses({}, tmp_path)
    console_env(app, data_dir, smtp_server.url, f"sqlite:///{data_dir / 'newsletter.db'}")
    app.run("db", "upgrade")
    service = Console(app)
    service.cli("lists", "create", "morning", "--name", "Morning Briefing", "--weekly", "0 8 * * 1")
    service.cli("lists", "create", "evening", "--name", "Evening Edition")
    service.cli("subscribers", "add", READER, "--list", "morning", "--name", "Ana", "--confirmed")
    rows = json.loads(service.cli("subscribers", "list", "--json"))
    assert rows[0]["email"] == READER
    import sqlite3

    db = sqlite3.connect(data_dir / "newsletter.db")
    (sid,) = db.execute("SELECT id FROM subscriptions").fetchone()
    db.close()
    token = make_preferences_token(app.env["NEWSLETTER_SECRET_KEY"], sid)
    app.start_web()
    shots = Path(__file__).resolve().parent.parent / "test-output" / "preferences"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
            try:
                for language in ("en", "uk"):
                    context = browser.new_context(
                        viewport={"width": 1280, "height": 900},
                        locale=language,  # scripts on for axe-core; the pages have none
                        extra_http_headers={"Accept-Language": language},
                    )
                    page = context.new_page()
                    page.goto(service.url(f"/preferences/{token}"))
                    _check(page, shots, f"page-{language}", WIDTHS)
                    page.goto(service.url("/preferences"))
                    _check(page, shots, f"ask-{language}", WIDTHS)
                    page.goto(service.url(f"/preferences/{token}/erase"))
                    _check(page, shots, f"erase-{language}", WIDTHS)
                    context.close()

                # Saving without JavaScript: the weekly round-up, then the page shows it.
                context = browser.new_context(java_script_enabled=False, locale="en")
                page = context.new_page()
                page.goto(service.url(f"/preferences/{token}"))
                page.get_by_label("A weekly round-up").check()
                page.get_by_label("Send me Evening Edition").check()
                page.get_by_role("button", name="Save my choices").click()
                assert page.get_by_role("status").is_visible()
                assert page.get_by_label("A weekly round-up").is_checked()
                context.close()
                context = browser.new_context(locale="en")
                page = context.new_page()
                page.goto(service.url(f"/preferences/{token}"))
                _check(page, shots, "saved-en", WIDTHS)  # with the pending list shown
                context.close()
            finally:
                browser.close()
    finally:
        app.stop()


def _check(page, shots: Path, name: str, widths: dict[str, tuple[int, int]]) -> None:
    from axe_playwright_python.sync_playwright import Axe

    shots.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in widths.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(shots / f"{name}-{label}.png"), full_page=True)
        results = Axe().run(page)
        bad = [
            (v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical", "moderate")
        ]
        assert not bad, (name, label, bad)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{name} is {overflow}px wider than {width}px"
