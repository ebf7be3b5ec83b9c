"""Outgoing webhooks: a real flow (the web form, a send through a real worker, a refusal
at RCPT, an ingested complaint) posts each event to a local receiver, signed with the
secret `webhooks add` printed; a failing receiver is retried; a dead one slows nothing.
"""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import WebhookDelivery, utcnow
from newsletter.webhooks import actions, events
from newsletter.webhooks.deliver import deliver_due
from tests.bounce_support import FIXTURES
from tests.send_support import populate, send_env, wait_status
from tests.services import AppProcesses, SmtpRules, SmtpServer, free_port, wait_until
from tests.webhook_support import Receiver, verify

ALL = ",".join(events.EVENT_TYPES)
GOOD = ["ana@example.org", "bo@example.org"]
REFUSED = "gone@example.net"


@pytest.fixture
def smtp_rules() -> SmtpRules:
    return SmtpRules(reject={REFUSED})


def _closed_port() -> int:
    port = free_port()
    with socket.socket() as s:  # nothing listens there: connection refused at once
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


def _secret(out: str) -> str:
    return re.search(r"secret: (whsec_[0-9a-f]{64})", out).group(1)  # type: ignore[union-attr]


def test_every_event_of_a_real_flow_is_posted_signed_and_a_dead_endpoint_slows_nothing(
    sqlite_db: str,
    data_dir: Path,
    tmp_path: Path,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = Receiver().start()
    env = send_env(data_dir, smtp_server.url, sqlite_db, None)
    env["NEWSLETTER_WEBHOOK_SWEEP_SECONDS"] = "1"
    del env["NEWSLETTER_BASE_URL"]  # the web process's own address (the form checks Origin)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    digest_id = populate([*GOOD, REFUSED])
    app = AppProcesses(env, tmp_path)
    try:
        app.run("lists", "create", "morning", "--name", "Morning Briefing")
        added = app.run("webhooks", "add", receiver.url, "--events", ALL, "--description", "CRM")
        secret = _secret(added.stdout)
        app.run("webhooks", "add", f"http://127.0.0.1:{_closed_port()}/x", "--events", ALL)
        assert "shown only now" in added.stdout
        listed = json.loads(app.run("webhooks", "list", "--json").stdout)
        assert [w["url"] for w in listed][0] == receiver.url
        assert "secret" not in json.dumps(listed) and secret not in json.dumps(listed)
        dead_id = listed[1]["id"]
        app.start_web()
        app.start_worker("--concurrency", "2")
        app._spawn("beat", name="beat")

        # A reader signs up, confirms from the mail and leaves with one click.
        with httpx.Client(base_url=app.base_url, timeout=10) as browser:
            form = browser.get("/subscribe")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
            data = {"email": "reader@example.org", "name": "Zoë", "list": "morning"}
            done = browser.post("/subscribe", data={**data, "csrf_token": token, "website": ""})
            assert done.status_code == 200
            (mail,) = smtp_server.wait_for(lambda m: len(m) >= 1)
            text = mail.message.get_body(("plain",)).get_content()
            link = re.search(r"(http://127\.0\.0\.1:\d+/confirm/\S+)", text).group(1)  # type: ignore[union-attr]
            confirmed = browser.post(link)
            assert confirmed.status_code == 200
            unsub = re.search(r'href="(/unsubscribe/[^"]+)"', confirmed.text).group(1)  # type: ignore[union-attr]
        one_click = httpx.post(
            app.base_url + unsub,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200

        # A send through the worker: one address refused at RCPT (bounced).
        began = time.monotonic()
        app.run("digest", "send", "--list", "news", "--json")
        wait_status(app, digest_id)
        send_seconds = time.monotonic() - began

        # A complaint (ARF) about a reader who got the digest.
        arf = (
            (FIXTURES / "arf-abuse.eml")
            .read_bytes()
            .replace(b"reader33@isp.example", GOOD[0].encode())
        )
        (tmp_path / "arf.eml").write_bytes(arf)
        app.run("bounces", "ingest", str(tmp_path / "arf.eml"))

        wait_until(
            lambda: receiver.types() >= set(events.EVENT_TYPES),
            60,
            "every event type at the receiver",
            details=lambda: f"got {sorted(receiver.types())}\n" + app.log("beat")[-3000:],
        )
    finally:
        app.stop()
        receiver.stop()

    by_type = {r.event["type"]: r for r in receiver.received}
    for r in receiver.received:
        assert verify(secret, r), r.headers
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-newsletter-event"] == r.event["type"]
        assert r.headers["x-newsletter-delivery"] == r.event["id"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r.event["created"])
        t = int(r.headers["x-newsletter-signature"].split(",")[0][2:])
        assert abs(t - time.time()) < 300
    assert not verify("whsec_" + "0" * 64, receiver.received[0])  # the check can fail
    ids = [r.event["id"] for r in receiver.received]
    assert len(ids) == len(set(ids))  # one POST per event: unique ids, no duplicates
    reader = {"email": "reader@example.org", "list": "morning"}
    assert by_type["subscribed"].event["data"] == {**reader, "status": "unconfirmed"}
    assert by_type["confirmed"].event["data"] == {**reader, "status": "confirmed"}
    assert by_type["unsubscribed"].event["data"]["email"] == "reader@example.org"
    bounced = by_type["bounced"].event["data"]
    assert bounced["email"] == REFUSED and bounced["kind"] == "hard" and bounced["diagnostic"]
    assert by_type["complained"].event["data"]["email"] == GOOD[0]
    started = by_type["send.started"].event["data"]
    finished = by_type["send.finished"].event["data"]
    assert started["digest_id"] == finished["digest_id"] == digest_id
    assert finished["list"] == "news" and finished["recipients"] == 3
    assert finished["counts"] == {"sent": 2, "bounced": 1}

    # The dead endpoint: the send did not wait for it; its rows wait for their retry.
    assert send_seconds < 60
    with session_scope() as session:
        rows = session.query(WebhookDelivery).filter_by(endpoint_id=dead_id).all()
        assert len(rows) == 7 and all(r.status == "pending" for r in rows)
        tried = [r for r in rows if r.attempts]
        assert tried and all("Connect" in (r.last_error or "") for r in tried)
    result = CliRunner().invoke(main, ["webhooks", "log", str(listed[0]["id"])])
    assert result.exit_code == 0 and result.output.count("delivered") == 7


def test_a_failing_receiver_is_retried_with_backoff_and_the_log_shows_it(database: str) -> None:
    receiver = Receiver(script=[500]).start()
    settings = get_settings()
    runner = CliRunner()
    try:
        added = runner.invoke(main, ["webhooks", "add", receiver.url, "--events", "confirmed"])
        assert added.exit_code == 0, added.output
        secret = _secret(added.output)
        endpoint_id = int(added.output.split()[2])
        with session_scope() as session:
            events.emit(session, "confirmed", {"email": "a@example.org", "list": "x"})
            events.emit(session, "bounced", {"email": "a@example.org"})  # not subscribed to
        assert deliver_due(session_scope, settings) == {
            "delivered": 0,
            "retrying": 1,
            "failed": 0,
            "skipped": 0,
        }
        log = runner.invoke(main, ["webhooks", "log", str(endpoint_id)]).output
        assert "pending" in log and "attempts 1" in log and "HTTP 500" in log
        # Not due again before its backoff …
        assert deliver_due(session_scope, settings)["retrying"] == 0
        # … and delivered when the backoff (30 s) has passed.
        later = utcnow() + timedelta(seconds=31)
        assert deliver_due(session_scope, settings, now=later)["delivered"] == 1
    finally:
        receiver.stop()
    first, second = receiver.received
    assert first.body == second.body  # the same event, the same bytes, the same id
    assert first.headers["x-newsletter-delivery"] == second.headers["x-newsletter-delivery"]
    assert verify(secret, second)
    log = runner.invoke(main, ["webhooks", "log", str(endpoint_id)]).output
    assert "delivered" in log and "attempts 2" in log and "code 200" in log
    assert "earlier: HTTP 500" in log
    listed = json.loads(runner.invoke(main, ["webhooks", "list", "--json"]).output)
    assert listed[0]["delivered"] == 1 and listed[0]["last_code"] == 200


def test_without_endpoints_emit_writes_nothing_and_a_removed_endpoint_gets_nothing(
    database: str,
) -> None:
    settings = get_settings()
    with session_scope() as session:
        events.emit(session, "send.started", {"digest_id": 1})
    with session_scope() as session:
        assert session.query(WebhookDelivery).count() == 0
        created = actions.add_webhook(session, settings, "http://127.0.0.1:9/h", ["send.started"])
        endpoint_id = created.value.record["id"]
    with session_scope() as session:
        events.emit(session, "send.started", {"digest_id": 1})
        actions.remove_webhook(session, settings, endpoint_id)
    with session_scope() as session:
        events.emit(session, "send.started", {"digest_id": 2})
        (row,) = session.query(WebhookDelivery).all()
        assert row.status == "failed" and row.last_error == "endpoint removed"
    assert deliver_due(session_scope, settings)["delivered"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://example.org/x", "--events", "confirmed"], "http:// or https://"),
        (["http://127.0.0.1:9/x", "--events", "confirmed,opened"], "unknown event 'opened'"),
        (["http://127.0.0.1:9/x", "--events", ""], "events:"),
        (["http://user:pw@127.0.0.1:9/x", "--events", "confirmed"], "no user or password"),
        (["http://hooks.example.com/x", "--events", "confirmed"], "exists nowhere"),
    ],
)
def test_bad_url_or_event_exits_2_with_one_line(
    sqlite_db: str, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["webhooks", "add", *args])
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output
    with session_scope() as session:
        assert session.query(WebhookDelivery).count() == 0
    assert json.loads(CliRunner().invoke(main, ["webhooks", "list", "--json"]).output) == []


def test_production_refuses_a_private_address(
    sqlite_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_FETCH_PRIVATE_NETWORKS", "false")
    get_settings.cache_clear()
    result = CliRunner().invoke(
        main, ["webhooks", "add", "http://127.0.0.1:8080/x", "--events", "confirmed"]
    )
    assert result.exit_code == 2 and "private address (127.0.0.1)" in result.output


def test_the_admin_api_shows_the_secret_once_and_refuses_bad_input(sqlite_db: str) -> None:
    from fastapi.testclient import TestClient

    from newsletter.web.app import create_app

    client = TestClient(create_app())
    auth = {"Authorization": f"Bearer {get_settings().admin}"}
    assert client.get("/api/webhooks").status_code == 401
    bad = client.post("/api/webhooks", json={"url": "http://x", "events": ["nope"]}, headers=auth)
    assert bad.status_code == 400 and "unknown event" in bad.json()["detail"][0]["message"]
    bad = client.post(
        "/api/webhooks", json={"url": "javascript:1", "events": "confirmed"}, headers=auth
    )
    assert bad.status_code == 400 and "http://" in bad.json()["detail"][0]["message"]
    made = client.post(
        "/api/webhooks",
        json={"url": "http://127.0.0.1:9/h", "events": ["confirmed", "send.finished"]},
        headers=auth,
    )
    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    endpoint_id = made.json()["id"]
    listed = client.get("/api/webhooks", headers=auth)
    assert listed.json()[0]["events"] == ["confirmed", "send.finished"]
    assert made.json()["secret"] not in listed.text
    assert client.get(f"/api/webhooks/{endpoint_id}/deliveries", headers=auth).json() == []
    assert client.delete(f"/api/webhooks/{endpoint_id}", headers=auth).status_code == 200
    assert client.delete(f"/api/webhooks/{endpoint_id}", headers=auth).status_code == 404
    assert client.get("/api/webhooks/999/deliveries", headers=auth).status_code == 404
