"""The whole loop: a digest goes out through real workers; one address is refused by the
receiving SMTP server, another is accepted and its DSN comes back later to
`newsletter bounce-server`; both end suppressed and the next digest skips them.

Real parts: the aiosmtpd sink of tests/services.py, `newsletter worker` and
`newsletter bounce-server` processes, the CLI; SQLite with the file-system broker and
PostgreSQL with Redis.
"""

from __future__ import annotations

import json
import re
import smtplib
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Digest
from tests.bounce_support import FIXTURES, is_suppressed, subscriber_state
from tests.send_support import HTML, TEXT, populate, send_env, wait_status
from tests.services import AppProcesses, SmtpRules, SmtpServer, free_port

GOOD = ["ana@example.org", "bo@example.org"]
REFUSED = "gone@example.net"  # the receiving server says 550 at RCPT
LATER = "moved@example.net"  # accepted now, a DSN comes back afterwards


@pytest.fixture(params=["embedded", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    if request.param == "embedded":
        return request.getfixturevalue("sqlite_db"), None
    return request.getfixturevalue("postgres_db"), request.getfixturevalue("redis_url")


def _wait_port(port: int, app: AppProcesses) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("bounce-server did not start:\n" + app.log("bounce-server"))


def _dsn_for(verp: str, recipient: str) -> bytes:
    """A Postfix DSN about ``recipient``, as the remote MTA sends it to our VERP address."""
    raw = (FIXTURES / "postfix-user-unknown.eml").read_bytes()
    raw = raw.replace(b"bounces+TESTTOKEN@bounces.example.com", verp.encode())
    raw = raw.replace(b"reader1@example.net", recipient.encode())
    return re.sub(rb"\r?\n", b"\r\n", raw)


def test_refused_and_later_bounced_addresses_are_suppressed_and_skipped_next_time(
    backend: tuple[str, str | None],
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database, broker = backend
    digest_id = populate([*GOOD, REFUSED, LATER])
    server = SmtpServer(SmtpRules(reject={REFUSED})).start()
    env = send_env(data_dir, server.url, database, broker)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = AppProcesses(env, tmp_path)
    bounce_port = free_port()
    try:
        app._spawn("bounce-server", "--port", str(bounce_port), name="bounce-server")
        app.start_worker("--concurrency", "2")
        _wait_port(bounce_port, app)

        app.run("digest", "send", "--list", "news", "--json")
        first = wait_status(app, digest_id)
        assert (first["sent"], first["bounced"]) == (3, 1)
        assert subscriber_state(REFUSED)[0] == "bounced" and is_suppressed(REFUSED)

        # Hours later the receiving side gives up on LATER and mails a DSN to the
        # envelope sender of that message: its VERP address.
        (message,) = server.to(LATER)
        with smtplib.SMTP("127.0.0.1", bounce_port, timeout=30) as smtp:
            smtp.sendmail("", [message.mail_from], _dsn_for(message.mail_from, LATER))
        assert subscriber_state(LATER)[0] == "bounced" and is_suppressed(LATER)

        listed = json.loads(app.run("subscribers", "list", "--json").stdout)
        assert {r["email"]: r["status"] for r in listed} == {
            GOOD[0]: "active",
            GOOD[1]: "active",
            REFUSED: "bounced",
            LATER: "bounced",
        }
        report = json.loads(app.run("bounces", "list", "--json").stdout)
        assert sorted((e["email"], e["kind"], e["source"]) for e in report["events"]) == [
            (REFUSED, "hard", "send"),
            (LATER, "hard", "smtp"),
        ]

        # The next digest reaches only the two good readers.
        with session_scope() as session:
            mlist_id = session.get(Digest, digest_id).list_id  # type: ignore[union-attr]
            nxt = Digest(list_id=mlist_id, subject="Tomorrow", html=HTML, text=TEXT)
            session.add(nxt)
            session.flush()
            next_id = nxt.id
        before = len(server.messages)
        started = json.loads(app.run("digest", "send", "--list", "news", "--json").stdout)
        assert (started["id"], started["total"]) == (next_id, 2)
        wait_status(app, next_id)
        second = Counter(r for m in server.messages[before:] for r in m.rcpt_tos)
        assert second == Counter(GOOD)
    finally:
        app.stop()
        server.stop()
