"""The welcome mail: after the confirming click only, once, from the list's own folder
or the built-in templates, in the reader's language, signed, with its own return path,
List-Unsubscribe and the preference centre's link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.mail.verp import decode_system_verp
from newsletter.subscriptions.lists import Options, create_list
from tests.services import SmtpServer


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


def make_list(slug: str, name: str, **options: object) -> None:
    with session_scope() as session:
        create_list(
            session,
            slug,
            name,
            settings=get_settings(),
            options=Options(**options),  # type: ignore[arg-type]
        )


def sign_up(client: TestClient, email: str, slug: str, **headers: str) -> None:
    form = client.get(f"/subscribe?list={slug}", headers=headers)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    language = re.search(r'name="language" value="([^"]*)"', form.text).group(1)
    answer = client.post(
        "/subscribe",
        data={"email": email, "list": slug, "csrf_token": token, "language": language},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text


def confirm_path(smtp: SmtpServer, email: str) -> str:
    text = smtp.to(email)[-1].message.get_body(("plain",)).get_content()
    return re.search(r"(/confirm/\S+)", text).group(1)


@pytest.mark.timeout(240)
def test_a_list_with_welcome_sends_it_once_after_the_confirming_click(
    eager: SmtpServer, web: TestClient
):
    make_list("morning", "Morning Briefing", welcome=True)
    sign_up(web, "ana@example.org", "morning")
    assert len(eager.to("ana@example.org")) == 1  # only the confirmation before confirming
    link = confirm_path(eager, "ana@example.org")
    assert web.get(link).status_code == 200
    assert len(eager.to("ana@example.org")) == 1  # a GET (a mail scanner) sends nothing

    assert "You are subscribed" in web.post(link).text
    assert "already" in web.post(link).text  # the double click
    mails = eager.to("ana@example.org")
    assert len(mails) == 2
    welcome = mails[-1]
    msg = welcome.message
    assert msg["Subject"] == "Welcome to Morning Briefing"
    assert decode_system_verp(welcome.mail_from, get_settings())[0] == "w"
    unsubscribe = re.search(r"<(http[^>]+/unsubscribe/[^>]+)>", msg["List-Unsubscribe"]).group(1)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    preferences = re.search(r"(http\S+/preferences/p2\.\S+)", text).group(1)
    assert preferences in html and unsubscribe in text
    # The link in the welcome opens the reader's page.
    page = web.get(preferences[preferences.index("/preferences/") :])
    assert page.status_code == 200 and "ana@example.org" in page.text


@pytest.mark.timeout(240)
def test_a_list_without_welcome_sends_none(eager: SmtpServer, web: TestClient):
    make_list("quiet", "Quiet List")
    sign_up(web, "bo@example.org", "quiet")
    web.post(confirm_path(eager, "bo@example.org"))
    assert len(eager.to("bo@example.org")) == 1


@pytest.mark.timeout(240)
def test_the_welcome_comes_from_the_list_s_own_folder_in_the_reader_s_language(
    eager: SmtpServer, web: TestClient, tmp_path: Path
):
    folder = tmp_path / "tpl"
    (folder / "welcome").mkdir(parents=True)
    (folder / "welcome" / "subject.txt").write_text(
        "{{ _('Welcome to %(list)s', list=list_name) }}!!"
    )
    make_list("evening", "Вечірні новини", welcome=True)
    with session_scope() as session:
        from sqlalchemy import select

        from newsletter.models import MailingList

        mlist = session.scalar(select(MailingList).where(MailingList.slug == "evening"))
        mlist.template_dir = str(folder)  # the welcome folder alone (no digest templates)
    sign_up(web, "olena@example.org", "evening", **{"Accept-Language": "uk-UA,uk;q=0.9"})
    web.post(confirm_path(eager, "olena@example.org"))
    msg = eager.to("olena@example.org")[-1].message
    assert msg["Subject"] == "Welcome to Вечірні новини!!"  # the list's subject.txt
    text = msg.get_body(("plain",)).get_content()
    assert "Дякуємо за підтвердження" in text  # the built-in body, in Ukrainian
    assert 'lang="uk"' in msg.get_body(("html",)).get_content()


# The sign-up form's extra fields ------------------------------------------------------------


def _with_fields(slug: str = "city") -> None:
    make_list(
        slug,
        "City News",
        form_fields=[
            {"name": "city", "label": "Your city", "required": True},
            {"name": "team", "label": "Favourite team", "required": False},
        ],
    )


def _stored(email: str) -> dict[str, object] | None:
    from sqlalchemy import select

    from newsletter.models import Subscriber

    with session_scope() as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == email))
        return None if found is None else dict(found.attributes or {})


def test_the_form_shows_the_list_s_fields_and_stores_them(eager: SmtpServer, web: TestClient):
    _with_fields()
    form = web.get("/subscribe?list=city")
    assert 'name="attributes.city"' in form.text and "Your city" in form.text
    assert 'name="attributes.team"' in form.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    answer = web.post(
        "/subscribe",
        data={
            "email": "cy@example.org",
            "list": "city",
            "csrf_token": token,
            "attributes.city": "Lviv",
            "attributes.team": "",
            "timezone": "Not/AZone",
        },
    )
    assert answer.status_code == 200
    assert _stored("cy@example.org") == {"city": "Lviv"}


def test_a_required_field_left_empty_is_a_400_and_nothing_is_stored(
    eager: SmtpServer, web: TestClient
):
    _with_fields()
    form = web.get("/subscribe?list=city")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    answer = web.post(
        "/subscribe",
        data={
            "email": "cy@example.org",
            "list": "city",
            "csrf_token": token,
            "attributes.team": "Dynamo",
        },
    )
    assert answer.status_code == 400
    assert "Please fill in: Your city." in answer.text
    assert 'aria-invalid="true" aria-describedby="attr-city-error"' in answer.text
    assert 'value="Dynamo"' in answer.text  # what the reader typed stays
    assert _stored("cy@example.org") is None
    assert eager.to("cy@example.org") == []


def test_the_json_sign_up_takes_attributes_of_the_form_only(eager: SmtpServer, web: TestClient):
    _with_fields()
    missing = web.post("/subscribe", json={"email": "j@example.org", "list": "city"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0] == {"field": "city", "message": "Please fill in: Your city."}
    foreign = web.post(
        "/subscribe",
        json={
            "email": "j@example.org",
            "list": "city",
            "attributes": {"city": "Kyiv", "vip": True},
        },
    )
    assert foreign.status_code == 422 and "vip" in foreign.text
    assert _stored("j@example.org") is None
    ok = web.post(
        "/subscribe",
        json={"email": "j@example.org", "list": "city", "attributes": {"city": "Kyiv"}},
        headers={"Accept-Language": "uk"},
    )
    assert ok.status_code == 202
    assert _stored("j@example.org") == {"city": "Kyiv"}
    assert "Підтвердьте" in eager.to("j@example.org")[0].message["Subject"]
