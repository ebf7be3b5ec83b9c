"""Pause and cancel act inside a running batch, not only between batches.

The whole list is one batch here (SEND_BATCH_SIZE above the list size) and SEND_RATE
slows it to a few messages a second, so only the batch's own status check can stop it:
after a pause the SMTP server's count stops growing; after a cancel the readers not
reached end `failed` with the operator's reason, and nobody gets a message after it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.models import Delivery, Subscriber
from tests.send_support import populate, send_env, status, wait_status
from tests.services import AppProcesses, SmtpServer, wait_until

READERS = 150
STILL = 3.0  # seconds the count must stay put: the test's subject, not a wait for readiness


BATCH_DONE = re.compile(r"send_batch\[[^\]]+\] succeeded")


def _batches_done(app: AppProcesses) -> int:
    return len(BATCH_DONE.findall(app.log("worker")))


def _stays_put(server: SmtpServer, app: AppProcesses, done: int) -> int:
    """The count once the running batch stopped (its task ended: its control check saw
    the pause or cancel, the message on the wire landed), then unchanged for STILL s."""
    wait_until(
        lambda: _batches_done(app) > done,
        15,  # a control check is once a second; the whole batch would take 30 s
        "the running batch to stop",
        interval=0.1,
        details=lambda: app.log("worker"),
    )
    before = len(server.messages)
    time.sleep(STILL)
    after = len(server.messages)
    assert after == before, f"{after - before} messages arrived while the send was stopped"
    return after


def test_pause_stops_a_running_batch_and_cancel_fails_the_rest_with_the_reason(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"s{i}@example.org" for i in range(READERS)]
    digest_id = populate(emails)
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, sqlite_db, None)
    env |= {"NEWSLETTER_SEND_RATE": "5", "NEWSLETTER_SEND_BATCH_SIZE": "500"}
    app = AppProcesses(env, tmp_path)
    try:
        app.start_worker("--concurrency", "1")
        app.run("digest", "send", "--list", "news")
        server.wait_for(lambda m: len(m) >= 3)
        done = _batches_done(app)
        app.run("sends", "pause", str(digest_id))
        at_pause = _stays_put(server, app, done)
        assert at_pause < READERS // 2
        assert status(app, digest_id)["status"] == "paused"

        app.run("sends", "resume", str(digest_id))
        server.wait_for(lambda m: len(m) >= at_pause + 3)
        done = _batches_done(app)
        app.run("sends", "cancel", str(digest_id))
        wait_status(app, digest_id, ("cancelled",))
        received = _stays_put(server, app, done)
        assert received < READERS

        def folded() -> dict | None:
            st = status(app, digest_id)
            return st if st["queued"] == 0 and st["sent"] + st["failed"] == READERS else None

        st = wait_until(folded, 30, "the cancelled batch to fold its rows", interval=0.5)
        assert st["sent"] == received
        with session_scope() as session:
            rows = session.execute(
                select(Subscriber.email, Delivery.status, Delivery.smtp_reply)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.digest_id == digest_id)
            ).all()
        got = {r for m in server.messages for r in m.rcpt_tos}
        for email, state, reply in rows:
            if email in got:
                assert state == "sent", (email, state)
            else:
                assert state == "failed" and reply == "cancelled by the operator", (
                    email,
                    state,
                    reply,
                )
    finally:
        app.stop()
        server.stop()
