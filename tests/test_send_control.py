"""What an operator sees and steers: the bounce guard, the admin API, `digest send --wait`,
and who is never mailed.

Real parts only: `newsletter web` and `newsletter worker` processes, the CLI as typed,
the aiosmtpd server of tests/services.py answering 550 for chosen addresses.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Subscriber, Subscription
from newsletter.subscriptions.tokens import make_unsubscribe_token
from tests.send_support import populate, send_env, status, wait_status
from tests.services import AppProcesses, SmtpRules, SmtpServer

TOKEN = "admin-token-for-the-tests-0123456789"
COUNTS = ("id", "status", "total", "queued", "sent", "deferred", "bounced", "failed")


def _use(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The test process reads the same settings as the app's processes."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def _counts(st: dict[str, Any], *, rate: bool = False) -> dict[str, Any]:
    return {k: st[k] for k in (*COUNTS, "pause_reason", *(("rate",) if rate else ()))}


def test_bounce_threshold_pauses_and_the_api_shows_what_the_cli_shows(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"reader{i}@example.org" for i in range(40)]
    rejected = set(emails[::4])  # a quarter of the list is unknown at the server
    digest_id = populate(emails)
    server = SmtpServer(SmtpRules(reject=rejected)).start()
    env = send_env(data_dir, server.url, sqlite_db, None)
    env |= {
        "NEWSLETTER_ADMIN_TOKEN": TOKEN,
        "NEWSLETTER_SEND_BOUNCE_THRESHOLD": "0.05",
        "NEWSLETTER_SEND_BOUNCE_MIN_DELIVERIES": "8",
    }
    app = AppProcesses(env, tmp_path)
    try:
        base = app.start_web()
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"})
        app.start_worker("--concurrency", "1")
        app.run("digest", "send", "--list", "news")
        st = wait_status(app, digest_id, ("paused",))
        assert st["pause_reason"].startswith("hard-bounce and complaint rate ")
        assert "over 5%" in st["pause_reason"] and "resume" in st["pause_reason"]
        assert st["bounced"] >= 2 and st["queued"] > 0, st  # stopped early, the rest waits
        assert 0 < len(server.messages) < 30

        # The admin API: the same object as the CLI.
        got = api.get(f"/api/sends/{digest_id}")
        assert got.status_code == 200
        assert _counts(got.json()) == _counts(status(app, digest_id))
        listed = api.get("/api/sends").json()
        cli_list = json.loads(app.run("sends", "list", "--json").stdout)
        assert [_counts(s) for s in listed] == [_counts(s) for s in cli_list]

        # Cancel ends it; pause, resume, cancel and retry are then illegal (409).
        cancelled = api.post(f"/api/sends/{digest_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        final = cancelled.json()
        assert final["queued"] == 0 and final["sent"] + final["bounced"] + final["failed"] == 40
        assert _counts(final, rate=True) == _counts(status(app, digest_id), rate=True)
        for action in ("pause", "resume", "cancel", "retry"):
            refused = api.post(f"/api/sends/{digest_id}/{action}")
            assert refused.status_code == 409, (action, refused.text)
            assert f"send {digest_id} is cancelled" in refused.text
            args = ["--failed"] if action == "retry" else []
            cli = app.run("sends", action, str(digest_id), *args, check=False)
            assert cli.returncode == 2 and f"send {digest_id} is cancelled" in cli.stderr
            assert "Traceback" not in cli.stderr
        assert len(server.messages) == final["sent"]  # nobody got it after the cancel

        # Bad ids and no token.
        missing = api.get("/api/sends/9999")
        assert missing.status_code == 404 and "there is no send 9999" in missing.text
        assert api.post("/api/sends/9999/pause").status_code == 404
        assert api.get("/api/sends/abc").status_code == 422
        no_list = api.post("/api/sends", json={"list": "nope"})
        assert no_list.status_code == 404 and "no newsletter called 'nope'" in no_list.text
        assert api.post("/api/sends", json={}).status_code == 422
        nothing_new = api.post("/api/sends", json={"list": "news"})
        assert nothing_new.status_code == 409 and "no new stories" in nothing_new.text
        unknown = api.post(f"/api/sends/{digest_id}/explode")
        assert unknown.status_code == 404 and "no action" in unknown.text
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            anon = httpx.get(f"{base}/api/sends/{digest_id}", headers=headers)
            assert anon.status_code == 401 and "admin token" in anon.text
            assert httpx.post(f"{base}/api/sends/{digest_id}/pause").status_code == 401
        cli = app.run("sends", "status", "abc", check=False)
        assert cli.returncode == 2 and "Traceback" not in cli.stderr
    finally:
        app.stop()
        server.stop()


def test_digest_send_wait_prints_the_final_counts_and_refuses_bad_input(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    first = [f"w{i}@example.org" for i in range(12)]
    second = [f"v{i}@example.org" for i in range(5)]
    news = populate(first)
    other = populate(second, slug="other")
    server = SmtpServer(SmtpRules(reject={"w3@example.org"})).start()
    app = AppProcesses(send_env(data_dir, server.url, sqlite_db, None), tmp_path)
    try:
        app.start_worker("--concurrency", "1")
        out = app.run("digest", "send", "--list", "news", "--wait", "--json")
        st = json.loads(out.stdout)
        assert st["id"] == news and st["status"] == "sent"
        assert (st["total"], st["sent"], st["bounced"], st["queued"], st["failed"]) == (
            12,
            11,
            1,
            0,
            0,
        )
        # No terminal: progress lines on stderr instead of a bar, the final line on stdout.
        plain = app.run("digest", "send", "--list", "other", "--wait")
        assert f"send {other}: " in plain.stderr and " done " in plain.stderr
        last = plain.stdout.strip().splitlines()[-1]
        assert last.startswith(f"send {other} (other): sent  total 5 ")
        assert "sent 5" in last and "queued 0" in last
        assert "Traceback" not in plain.stderr
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert set(counts.values()) == {1} and len(counts) == 16

        unknown = app.run("digest", "send", "--list", "nope", "--wait", check=False)
        assert unknown.returncode == 2
        assert "no newsletter called 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
        empty = app.run("digest", "send", "--list", "news", "--wait", "--json", check=False)
        assert empty.returncode == 2 and empty.stdout == ""
        assert "no new stories" in empty.stderr and "Traceback" not in empty.stderr
    finally:
        app.stop()
        server.stop()


def test_only_confirmed_active_subscribers_ever_receive_a_digest(
    sqlite_db: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers = ["stays@example.org", "leaves@example.org", "erased@example.org"]
    never = {
        "pending@example.org": ("unconfirmed", "active"),
        "unsubscribed@example.org": ("unsubscribed", "active"),
        "bounced@example.org": ("confirmed", "bounced"),
        "complained@example.org": ("confirmed", "complained"),
        "suppressed@example.org": ("confirmed", "suppressed"),
    }
    digest_id = populate([*readers, *never])
    with session_scope() as session:
        for email, (sub_status, person_status) in never.items():
            person = session.scalar(select(Subscriber).where(Subscriber.email == email))
            assert person is not None
            person.status = person_status
            sub = session.scalar(
                select(Subscription).where(Subscription.subscriber_id == person.id)
            )
            assert sub is not None
            sub.status = sub_status
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, sqlite_db, None)
    _use(env, monkeypatch)
    app = AppProcesses(env, tmp_path)
    try:
        # The ledger is written before any worker runs; two readers leave in between.
        started = json.loads(app.run("digest", "send", "--list", "news", "--json").stdout)
        assert started["total"] == 3
        with session_scope() as session:
            leaving = session.scalar(
                select(Subscription.id)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .where(Subscriber.email == "leaves@example.org")
            )
        assert leaving is not None
        token = make_unsubscribe_token(get_settings().secret, leaving)
        from newsletter.web.app import create_app

        with TestClient(create_app()) as client:
            done = client.post(
                f"/unsubscribe/{token}",
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        assert done.status_code == 200
        app.run("subscribers", "erase", "erased@example.org")
        app.start_worker("--concurrency", "1")
        st = wait_status(app, digest_id)
        assert (st["sent"], st["failed"]) == (1, 2)
        assert [r for m in server.messages for r in m.rcpt_tos] == ["stays@example.org"]
    finally:
        app.stop()
        server.stop()
