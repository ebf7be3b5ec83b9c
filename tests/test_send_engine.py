"""A digest goes to every confirmed subscriber exactly once, through real workers.

Real parts only: the aiosmtpd server of tests/services.py (accepting, rejecting with
550, deferring with 451, hanging up), `newsletter worker` processes on the embedded
broker with SQLite and on Redis with PostgreSQL, and the CLI as an operator types it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import dkim
import pytest
from sqlalchemy import select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.mail.dkim import load_key
from newsletter.mail.verp import decode_verp
from newsletter.models import BounceEvent, Subscriber
from tests.send_support import dkim_keys, populate, send_env, status, wait_status
from tests.services import AppProcesses, SmtpRules, SmtpServer, wait_until


@pytest.fixture(params=["embedded", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """SQLite with the file-system broker, or PostgreSQL with Redis."""
    if request.param == "embedded":
        return request.getfixturevalue("sqlite_db"), None
    return request.getfixturevalue("postgres_db"), request.getfixturevalue("redis_url")


def test_every_subscriber_gets_one_signed_message_and_failures_are_recorded(
    backend: tuple[str, str | None],
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database, broker = backend
    good = [f"reader{i}@example.org" for i in range(40)]
    bad, grey, dropped = "gone@example.net", "grey@example.net", "hangup@example.net"
    digest_id = populate([*good, bad, grey, dropped])
    rules = SmtpRules(reject={bad}, defer={grey}, drop={dropped})
    server = SmtpServer(rules).start()
    rsa_path, ed_path = dkim_keys(tmp_path)
    env = send_env(data_dir, server.url, database, broker)
    env.update(
        NEWSLETTER_DKIM_DOMAIN="example.com",
        NEWSLETTER_DKIM_SELECTOR="rsa1",
        NEWSLETTER_DKIM_KEY_FILE=str(rsa_path),
        NEWSLETTER_DKIM_ED25519_KEY_FILE=str(ed_path),
        NEWSLETTER_DKIM_ED25519_SELECTOR="ed1",
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = AppProcesses(env, tmp_path)
    try:
        app.start_worker("--concurrency", "2")
        started = json.loads(app.run("digest", "send", "--list", "news", "--json").stdout)
        assert started["id"] == digest_id and started["total"] == 43
        st = wait_status(app, digest_id)
        assert (st["sent"], st["bounced"], st["failed"], st["queued"]) == (40, 1, 2, 0)
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert all(counts[a] == 1 for a in good), counts
        assert not counts[bad] and not counts[grey] and not counts[dropped]

        dns = {
            b"rsa1._domainkey.example.com.": load_key(rsa_path, "example.com", "rsa1"),
            b"ed1._domainkey.example.com.": load_key(ed_path, "example.com", "ed1"),
        }

        def txt(name: bytes, timeout: int = 5) -> bytes:
            return dns[name].public_dns_record()

        settings = get_settings()
        delivery_ids = set()
        for received in server.messages:
            msg = received.message
            to = received.rcpt_tos[0]
            assert msg["To"].addresses[0].addr_spec == to
            assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            unsub = msg["List-Unsubscribe"]
            assert "<https://news.example.com/unsubscribe/" in unsub and "<mailto:" in unsub
            assert msg["List-Id"].endswith("<news.example.com>")
            assert msg["Precedence"] == "bulk" and msg["Date"] and msg["Message-ID"]
            assert msg["Subject"] == "Today’s digest"
            delivery = decode_verp(received.mail_from, settings)
            assert delivery is not None
            delivery_ids.add(delivery)
            name = f"Reader {good.index(to)}"
            text = msg.get_body(("plain",)).get_content()
            html = msg.get_body(("html",)).get_content()
            assert f"Hello {name}," in text and f"Hello {name}," in html
            url = unsub.split("<", 1)[1].split(">", 1)[0]
            assert url in text and url in html
            signature = dkim.DKIM(received.data)
            assert signature.verify(0, dnsfunc=txt) and signature.verify(1, dnsfunc=txt)
        assert len(delivery_ids) == 40

        with session_scope() as session:
            gone = session.scalar(select(Subscriber).where(Subscriber.email == bad))
            assert gone is not None and gone.status == "bounced"
            event = session.scalar(select(BounceEvent).where(BounceEvent.subscriber_id == gone.id))
            assert event is not None and event.kind == "hard" and event.status_code == "5.1.1"

        # The failed ones keep their reply; retry re-sends only them.
        rules.defer.clear()
        rules.drop.clear()
        before = len(server.messages)
        out = json.loads(app.run("sends", "retry", str(digest_id), "--failed", "--json").stdout)
        assert out["queued"] == 2
        st = wait_status(app, digest_id)
        assert (st["sent"], st["bounced"], st["failed"]) == (42, 1, 0)
        again = [r for m in server.messages[before:] for r in m.rcpt_tos]
        assert sorted(again) == sorted([grey, dropped])
    finally:
        app.stop()
        server.stop()


def test_a_threads_pool_worker_sends_everyone_once(
    backend: tuple[str, str | None], data_dir: Path, tmp_path: Path
) -> None:
    """`newsletter worker --pool threads` (the README's choice for small hardware): two
    batches side by side in one process, each thread with its own connections and its
    own message made ahead, and still one message per reader, each their own."""
    database, broker = backend
    readers = [f"reader{i}@example.org" for i in range(120)]
    digest_id = populate(readers)
    server = SmtpServer().start()
    app = AppProcesses(send_env(data_dir, server.url, database, broker), tmp_path)
    try:
        app.start_worker("--pool", "threads", "--concurrency", "2")
        app.run("digest", "send", "--list", "news")
        st = wait_status(app, digest_id)
        assert (st["sent"], st["failed"], st["queued"]) == (120, 0, 0)
        assert Counter(r for m in server.messages for r in m.rcpt_tos) == Counter(readers)
        for received in server.messages:
            (to,) = received.rcpt_tos
            msg = received.message
            assert msg["To"].addresses[0].addr_spec == to
            greeting = f"Hello Reader {readers.index(to)},"
            assert greeting in msg.get_body(("plain",)).get_content()
        assert "ForkPoolWorker" not in app.log("worker")
    finally:
        app.stop()
        server.stop()


def test_outage_pauses_with_the_reason_and_resumes_when_smtp_answers(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    digest_id = populate([f"r{i}@example.org" for i in range(15)])
    server = SmtpServer()  # not started yet: connections are refused
    app = AppProcesses(send_env(data_dir, server.url, sqlite_db, None), tmp_path)
    try:
        app.start_worker("--concurrency", "1")
        app.run("digest", "send", "--list", "news")
        st = wait_status(app, digest_id, ("paused",))
        assert "SMTP server unreachable" in st["pause_reason"]
        server.start()
        st = wait_status(app, digest_id)
        assert st["sent"] == 15
        assert sorted(r for m in server.messages for r in m.rcpt_tos) == sorted(
            f"r{i}@example.org" for i in range(15)
        )
    finally:
        app.stop()
        server.stop()


READERS_STEERED = 100


def test_pause_resume_and_cancel_from_the_cli(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"p{i}@example.org" for i in range(READERS_STEERED)]
    digest_id = populate(emails)
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, sqlite_db, None)
    # Slow enough to steer: 25 seconds of sending, while a `newsletter` command can take
    # several seconds to start on a loaded machine (the suite runs in parallel).
    env["NEWSLETTER_SEND_RATE"] = "4"
    app = AppProcesses(env, tmp_path)
    try:
        app.start_worker("--concurrency", "1")
        app.run("digest", "send", "--list", "news")
        server.wait_for(lambda m: len(m) >= 3)
        paused = json.loads(app.run("sends", "pause", str(digest_id), "--json").stdout)
        assert paused["status"] == "paused"
        # Resume, then cancel: what was not sent ends failed, with the reason.
        app.run("sends", "resume", str(digest_id))
        server.wait_for(lambda m: len(m) >= 8)
        app.run("sends", "cancel", str(digest_id))
        st = wait_status(app, digest_id, ("cancelled",))

        def folded() -> dict | None:  # the running batch noticed the cancel and folded
            st = status(app, digest_id)
            done = st["sent"] + st["failed"] == READERS_STEERED and st["queued"] == 0
            return st if done else None

        st = wait_until(
            folded,
            30,
            "the cancelled send's batch to fold",
            interval=0.5,
            details=lambda: f"{status(app, digest_id)}\n{app.log('worker')}",
        )
        assert st["sent"] == len(server.messages)
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert max(counts.values()) == 1
        bad = app.run("sends", "pause", "9999", check=False)
        assert bad.returncode == 2 and "no send 9999" in bad.stderr
    finally:
        app.stop()
        server.stop()
