"""The rules a reader and an abuser meet on POST /subscribe, /confirm and /unsubscribe.

The web app runs in-process; the confirmation task runs eagerly (Celery's own mode for
this) so each mail really goes through SMTP to the test server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Subscriber, Subscription, utcnow
from newsletter.subscriptions.lists import create_list
from tests.conftest import reset_caches
from tests.services import SmtpServer


@pytest.fixture
def client(sqlite_db: str, smtp_server: SmtpServer) -> Iterator[TestClient]:
    from newsletter.web.app import create_app
    from workers.app import app as celery_app

    with session_scope() as session:
        create_list(session, "morning", "Morning Briefing")
        create_list(session, "weekly", "The Weekly")
    celery_app.conf.task_always_eager = True
    try:
        with TestClient(create_app()) as c:
            yield c
    finally:
        celery_app.conf.task_always_eager = False


def form_token(client: TestClient) -> str:
    page = client.get("/subscribe")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def submit(client: TestClient, **fields: str):
    data = {"list": "morning", "csrf_token": form_token(client), **fields}
    return client.post("/subscribe", data=data)


def stored_subscribers() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Subscriber.email)))


def confirm_link(smtp_server: SmtpServer, index: int = -1) -> str:
    text = smtp_server.messages[index].message.get_body(("plain",)).get_content()
    return re.search(r"https?://\S+/confirm/(\S+)", text).group(0).split("/confirm/")[1]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"email": "not-an-address"}, "email", "not a valid e-mail address"),
        ({"email": ""}, "email", "enter your e-mail address"),
        ({"email": "a" * 250 + "@example.org"}, "email", "too long"),
        ({"email": "ok@example.org", "list": ""}, "list", "choose a newsletter"),
        ({"email": "ok@example.org", "list": "nope"}, "list", "no newsletter called"),
        ({"email": "ok@example.org", "name": "x" * 201}, "name", "under 200 characters"),
        ({"email": "ok@example.org", "name": "Eve\r\nBcc: all@example.org"}, "name", "line breaks"),
    ],
)
def test_bad_input_comes_back_next_to_the_field_and_changes_nothing(
    client: TestClient, smtp_server: SmtpServer, fields: dict, field: str, message: str
):
    response = submit(client, **fields)
    assert response.status_code == 422
    error = re.search(
        rf'<p class="error" id="{field}-error" role="alert">([^<]+)</p>', response.text
    )
    assert error and message in error.group(1).lower()
    assert stored_subscribers() == []
    assert smtp_server.messages == []


def test_json_variant_answers_422_with_the_field_and_202_when_accepted(
    client: TestClient, smtp_server: SmtpServer
):
    bad = client.post("/subscribe", json={"email": "nope", "list": "morning"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "email"
    good = client.post("/subscribe", json={"email": "api@example.org", "list": "morning"})
    assert good.status_code == 202 and good.json()["status"] == "pending"
    assert len(smtp_server.to("api@example.org")) == 1


def test_html_in_a_name_is_escaped_on_the_page_and_in_the_mail(
    client: TestClient, smtp_server: SmtpServer
):
    name = '<script>alert("x")</script>'
    again = submit(client, email="bad address", name=name)
    assert "<script>alert" not in again.text and "&lt;script&gt;" in again.text
    submit(client, email="html@example.org", name=name)
    html = smtp_server.messages[0].message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert smtp_server.messages[0].message["To"].addresses[0].display_name == name


def test_same_address_in_any_case_or_unicode_form_is_one_subscriber(client: TestClient):
    submit(client, email="José@Example.ORG")
    submit(
        client, email="jose\u0301@example.org".replace("jose\u0301", "Jose\u0301"), list="weekly"
    )
    assert stored_subscribers() == ["josé@example.org"]


def test_pending_address_gets_at_most_one_confirmation_per_ten_minutes(
    client: TestClient, smtp_server: SmtpServer
):
    for _ in range(3):
        assert "Check your inbox" in submit(client, email="again@example.org").text
    assert len(smtp_server.messages) == 1
    with session_scope() as session:
        session.execute(
            update(Subscription).values(confirm_sent_at=utcnow() - timedelta(minutes=11))
        )
    submit(client, email="again@example.org")
    assert len(smtp_server.messages) == 2
    # Only the newest link works: the older one was replaced.
    assert client.post(f"/confirm/{confirm_link(smtp_server, 0)}").status_code == 400
    assert client.post(f"/confirm/{confirm_link(smtp_server, 1)}").status_code == 200


def test_confirmed_address_sees_the_same_page_and_gets_nothing(
    client: TestClient, smtp_server: SmtpServer
):
    first = submit(client, email="known@example.org")
    client.post(f"/confirm/{confirm_link(smtp_server)}")
    second = submit(client, email="known@example.org")
    unknown = submit(client, email="stranger@example.org")
    assert second.status_code == unknown.status_code == 200
    assert _main(second.text) == _main(unknown.text) == _main(first.text)
    assert len(smtp_server.to("known@example.org")) == 1


def _main(html: str) -> str:
    return html[html.index("<main>") : html.index("</main>")]


def test_tampered_or_unknown_confirm_links_get_a_clear_400_page(
    client: TestClient, smtp_server: SmtpServer
):
    submit(client, email="t@example.org")
    token = confirm_link(smtp_server)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad in (tampered, "garbage", token + "x"):
        for method in (client.get, client.post):
            response = method(f"/confirm/{bad}")
            assert response.status_code == 400
            assert "This link is not valid" in response.text
    with session_scope() as session:
        session.execute(Subscription.__table__.delete())
    assert client.post(f"/confirm/{token}").status_code == 400


def test_expired_link_offers_a_new_mail(
    client: TestClient, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
):
    submit(client, email="late@example.org")
    token = confirm_link(smtp_server)
    monkeypatch.setenv("NEWSLETTER_CONFIRM_TTL_DAYS", "0")
    monkeypatch.setenv("NEWSLETTER_CONFIRM_RESEND_MINUTES", "0")
    reset_caches()
    import itsdangerous.timed

    later = itsdangerous.timed.time.time() + 5
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
    page = client.post(f"/confirm/{token}")
    assert page.status_code == 410 and "expired" in page.text
    assert 'action="/confirm/' in page.text and "Send me a new link" in page.text
    renewed = client.post(f"/confirm/{token}/renew")
    assert renewed.status_code == 200
    assert len(smtp_server.to("late@example.org")) == 2


def test_unsubscribe_is_immediate_idempotent_and_coming_back_needs_confirmation(
    client: TestClient, smtp_server: SmtpServer
):
    submit(client, email="leaver@example.org")
    old_link = confirm_link(smtp_server)
    done = client.post(f"/confirm/{old_link}")
    unsub = re.search(r'href="/unsubscribe/([^"]+)"', done.text).group(1)
    for _ in range(2):
        assert "You are unsubscribed" in client.post(f"/unsubscribe/{unsub}").text
    with session_scope() as session:
        assert session.scalar(select(Subscription.status)) == "unsubscribed"

    submit(client, email="leaver@example.org")
    assert len(smtp_server.to("leaver@example.org")) == 2
    with session_scope() as session:
        assert session.scalar(select(Subscription.status)) == "unconfirmed"
    assert client.post(f"/confirm/{old_link}").status_code == 400  # the old link is dead
    assert client.post(f"/confirm/{confirm_link(smtp_server)}").status_code == 200


def test_bad_unsubscribe_token_is_a_400_never_a_500(client: TestClient):
    assert client.get("/unsubscribe/nonsense").status_code == 400
    one_click = client.post(
        "/unsubscribe/nonsense",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 400


def test_honeypot_looks_accepted_but_stores_and_sends_nothing(
    client: TestClient, smtp_server: SmtpServer
):
    response = submit(client, email="bot@example.org", website="http://spam.example")
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert stored_subscribers() == [] and smtp_server.messages == []


def test_form_without_a_valid_csrf_token_is_refused(client: TestClient, smtp_server: SmtpServer):
    client.get("/subscribe")
    forged = client.post(
        "/subscribe", data={"email": "x@example.org", "list": "morning", "csrf_token": "forged"}
    )
    assert forged.status_code == 403 and "Reload the page" in forged.text
    client.cookies.clear()
    no_cookie = client.post("/subscribe", data={"email": "x@example.org", "list": "morning"})
    assert no_cookie.status_code == 403
    assert stored_subscribers() == [] and smtp_server.messages == []


@pytest.fixture
def tight_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SUBSCRIBE_LIMIT_IP", "3")
    monkeypatch.setenv("NEWSLETTER_SUBSCRIBE_LIMIT_ADDRESS", "2")
    reset_caches()


def test_one_ip_is_limited_with_429(tight_limits: None, client: TestClient):
    codes = [submit(client, email=f"r{i}@example.org").status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = submit(client, email="r9@example.org")
    assert limited.status_code == 429 and limited.headers["Retry-After"]
    assert "r9@example.org" not in stored_subscribers()


def test_one_address_is_limited_whatever_the_ip(
    tight_limits: None, client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NEWSLETTER_SUBSCRIBE_LIMIT_IP", "100")
    reset_caches()
    codes = [
        client.post(
            "/subscribe",
            json={"email": "target@example.org", "list": "morning"},
            headers={"X-Forwarded-For": f"10.0.0.{i}"},
        ).status_code
        for i in range(3)
    ]
    assert codes == [202, 202, 429]


def test_rate_limits_are_shared_through_redis(
    tight_limits: None, sqlite_db: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
):
    """Two web processes behind one balancer count against one limit."""
    from newsletter.web.app import create_app

    with session_scope() as session:
        create_list(session, "morning", "Morning Briefing")
    monkeypatch.setenv("NEWSLETTER_BROKER_URL", redis_url)
    reset_caches()
    first, second = TestClient(create_app()), TestClient(create_app())
    codes = [
        c.post("/subscribe", json={"email": f"s{i}@example.org", "list": "nope"}).status_code
        for i, c in enumerate((first, second, first, second))
    ]
    assert codes == [422, 422, 422, 429]


def test_refused_forms_and_bots_do_not_spend_the_address_limit(
    tight_limits: None, client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    """The address limit counts only requests that passed the CSRF check and the honeypot:
    a forger cannot lock a reader out of signing up."""
    monkeypatch.setenv("NEWSLETTER_SUBSCRIBE_LIMIT_IP", "100")
    reset_caches()
    client.get("/subscribe")
    for _ in range(3):
        forged = client.post(
            "/subscribe",
            data={"email": "target@example.org", "list": "morning", "csrf_token": "forged"},
        )
        assert forged.status_code == 403
        assert submit(client, email="target@example.org", website="x").status_code == 200
    codes = [submit(client, email="target@example.org").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_limits_are_counted_in_turn_stopping_at_the_first_spent(
    kind: str, request: pytest.FixtureRequest
):
    """One round trip for both limits, counted as if checked one after the other."""
    from newsletter.web.ratelimit import make_limiter

    limiter = make_limiter(request.getfixturevalue("redis_url") if kind == "redis" else None)
    ip, address = ("ip:1.2.3.4", 3, 60), ("addr:a@example.org", 2, 60)
    assert [limiter.hit_each([ip, address]) for _ in range(3)] == [None, None, 1]
    assert limiter.hit_each([ip, address]) == 0  # the IP's 4th: the address is not counted
    assert limiter.hit_each([("ip:5.6.7.8", 3, 60), ("addr:b@example.org", 1, 60)]) is None
    assert not limiter.hit("addr:b@example.org", 1, 60)  # hit() shares the counts
    assert limiter.hit_each([]) is None


def test_sign_ups_at_once_are_each_stored_with_one_confirmation(
    client: TestClient, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
):
    """Many forms posted at the same moment: every one stored, one mail each."""
    import asyncio

    import httpx

    monkeypatch.setenv("NEWSLETTER_SUBSCRIBE_LIMIT_IP", "100")
    reset_caches()
    token = form_token(client)
    app = client.app

    async def post_all() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies=dict(client.cookies)
        ) as browser:
            answers = await asyncio.gather(
                *(
                    browser.post(
                        "/subscribe",
                        data={"email": f"r{i}@example.org", "list": "morning", "csrf_token": token},
                    )
                    for i in range(24)
                )
            )
        return [a.status_code for a in answers]

    assert asyncio.run(post_all()) == [200] * 24
    assert sorted(stored_subscribers()) == sorted(f"r{i}@example.org" for i in range(24))
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(
        f"r{i}@example.org" for i in range(24)
    )


def test_each_reader_gets_the_inbox_page_in_their_own_language(client: TestClient):
    """The "check your inbox" page is kept once rendered: never another reader's language."""
    english = submit(client, email="ann@example.org")
    ukrainian = client.post(
        "/subscribe",
        data={"email": "olena@example.org", "list": "morning", "csrf_token": form_token(client)},
        headers={"Accept-Language": "uk-UA,uk;q=0.9"},
    )
    chosen = client.post(
        "/subscribe?lang=uk",
        data={"email": "taras@example.org", "list": "morning", "csrf_token": form_token(client)},
    )
    again = submit(client, email="bob@example.org")

    assert english.status_code == ukrainian.status_code == chosen.status_code == 200
    assert "Check your inbox" in english.text and english.headers["Content-Language"] == "en"
    assert "Перевірте пошту" in ukrainian.text and ukrainian.headers["Content-Language"] == "uk"
    assert "Перевірте пошту" in chosen.text and "/subscribe?lang=en" in chosen.text
    assert again.text == english.text
    for name in ("Content-Language", "Content-Security-Policy", "X-Content-Type-Options"):
        assert again.headers[name] == english.headers[name]
    assert sorted(stored_subscribers()) == [
        "ann@example.org",
        "bob@example.org",
        "olena@example.org",
        "taras@example.org",
    ]


def test_a_sign_up_records_who_asked_when_from_where_and_to_what_text(
    client: TestClient, smtp_server: SmtpServer
):
    before = utcnow()
    done = client.post(
        "/subscribe",
        data={
            "email": "Mira@Example.org",
            "name": "Mira",
            "list": "weekly",
            "csrf_token": form_token(client),
            "timezone": "Europe/Lisbon",
            "language": "uk",
        },
        headers={"User-Agent": "Browser/1.0"},
    )
    assert done.status_code == 200
    with session_scope() as session:
        reader = session.scalars(select(Subscriber)).one()
        (sub,) = reader.subscriptions
        stored = (reader.email, reader.name, reader.status, reader.language, reader.timezone)
        consent = (sub.consent_ip, sub.consent_user_agent, sub.consent_source)
        assert sub.consent_at is not None and sub.consent_at >= before
        assert sub.consent_text_version == get_settings().consent_version
        assert (sub.mailing_list.slug, sub.status) == ("weekly", "unconfirmed")
    assert stored == ("mira@example.org", "Mira", "active", "uk", "Europe/Lisbon")
    assert consent == ("testclient", "Browser/1.0", "form")
    # The mail's link is this subscription's and works once.
    confirmed = client.post(f"/confirm/{confirm_link(smtp_server)}")
    assert confirmed.status_code == 200
    with session_scope() as session:
        assert session.scalars(select(Subscription.status)).one() == "confirmed"
