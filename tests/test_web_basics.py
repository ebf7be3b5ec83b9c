"""Health, metrics, admin authentication, the outbox and error pages."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.mail.catcher import start_catcher
from newsletter.mail.smtp import SmtpTransport
from newsletter.subscriptions.consent import ConsentRecord, subscribe
from newsletter.subscriptions.lists import create_list
from tests.conftest import reset_caches
from tests.services import free_port


@pytest.fixture
def client(sqlite_db: str):
    from newsletter.web.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {get_settings().admin}"}


def test_healthz_reports_ok_and_503_without_a_database(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    assert client.get("/healthz").json()["status"] == "ok"
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    reset_caches()
    down = client.get("/healthz")
    assert down.status_code == 503 and down.json()["database"] == "unreachable"
    assert "nobody" not in down.text


def test_metrics_count_subscribers_and_subscriptions(client: TestClient):
    with session_scope() as session:
        create_list(session, "morning", "Morning")
        for i in range(3):
            subscribe(
                session,
                get_settings(),
                email=f"m{i}@example.org",
                name="",
                list_slug="morning",
                consent=ConsentRecord(),
                confirmed=i > 0,
            )
    text = client.get("/metrics").text
    assert 'newsletter_subscribers{status="active"} 3' in text
    assert 'newsletter_subscriptions{status="confirmed"} 2' in text
    assert 'newsletter_subscriptions{status="unconfirmed"} 1' in text
    assert "# TYPE newsletter_deliveries gauge" in text
    assert "# TYPE newsletter_bounce_events gauge" in text


def test_admin_api_needs_the_token(client: TestClient):
    assert client.get("/api/lists").status_code == 401
    wrong = client.get("/api/lists", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401 and wrong.json()["detail"]
    made = client.post(
        "/api/lists", json={"slug": "weekly", "name": "Weekly"}, headers=admin_headers()
    )
    assert made.status_code == 201
    assert client.get("/api/lists", headers=admin_headers()).json()[0]["slug"] == "weekly"
    bad = client.post("/api/lists", json={"slug": "Bad Slug", "name": "x"}, headers=admin_headers())
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "slug"


def test_admin_api_adds_and_lists_subscribers(client: TestClient):
    client.post("/api/lists", json={"slug": "weekly", "name": "Weekly"}, headers=admin_headers())
    added = client.post(
        "/api/subscribers",
        json={"email": "Ed@Example.org", "list": "weekly", "confirmed": True},
        headers=admin_headers(),
    )
    assert added.status_code == 201 and added.json()["outcome"] == "confirmed"
    rows = client.get("/api/subscribers?list=weekly", headers=admin_headers()).json()
    assert rows[0]["email"] == "ed@example.org"
    assert rows[0]["subscriptions"] == {"weekly": "confirmed"}
    bad = client.post(
        "/api/subscribers", json={"email": "x", "list": "weekly"}, headers=admin_headers()
    )
    assert bad.status_code == 422


def test_unknown_pages_are_a_friendly_404(client: TestClient):
    page = client.get("/no/such/page")
    assert page.status_code == 404 and "Page not found" in page.text
    assert client.get("/api/nothing", headers=admin_headers()).status_code == 404


def test_the_outbox_shows_what_the_catcher_received(client: TestClient, data_dir: Path):
    port = free_port()
    catcher = start_catcher(get_settings().outbox_dir, port=port)
    try:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", "Hello <b>"
        msg.set_content("plain")
        msg.add_alternative("<p>rich <script>x()</script></p>", subtype="html")
        from newsletter.config import SmtpConfig

        transport = SmtpTransport(SmtpConfig(f"smtp://127.0.0.1:{port}"))
        transport.send(msg.as_bytes(), "a@example.org", ["b@example.org"])
        transport.close()
    finally:
        catcher.stop()
    listing = client.get("/outbox")
    assert "Hello &lt;b&gt;" in listing.text and "b@example.org" in listing.text
    key = listing.text.split('href="/outbox/')[1].split('"')[0]
    shown = client.get(f"/outbox/{key}")
    assert shown.status_code == 200
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in shown.text
    assert "<script>x()" not in shown.text
    assert client.get("/outbox/../../etc/passwd").status_code == 404
    assert client.get("/outbox/nonexistent").status_code == 404


def test_openapi_describes_the_admin_api(client: TestClient):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/lists" in paths and "/api/subscribers" in paths


def test_the_app_answers_after_the_database_ended_its_idle_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """As after a PostgreSQL restart: the pool's idle connections are dead; the next
    request gets a fresh one instead of an error (no ping per request to find out)."""
    import time

    import psycopg

    from newsletter.db import IDLE_PING_SECONDS
    from newsletter.web.app import create_app
    from tests.services import PG_ADMIN_URL, postgres_database

    with postgres_database() as url:
        monkeypatch.setenv("NEWSLETTER_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
        reset_caches()
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            assert client.get("/healthz").json()["status"] == "ok"
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (url.rsplit("/", 1)[1],),
                ).fetchone()
            assert ended is not None and ended[0] >= 1
            time.sleep(IDLE_PING_SECONDS + 0.2)
            again = client.get("/healthz")
        reset_caches()  # the pool lets go of the database before it is dropped
    assert again.status_code == 200 and again.json()["status"] == "ok"
