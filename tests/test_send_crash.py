"""Exactly once: a redelivered batch and a worker killed with SIGKILL mid-batch."""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from newsletter.db import session_scope
from newsletter.models import Delivery, DeliveryStatus, Digest, utcnow
from tests.send_support import populate, send_env, wait_status
from tests.services import AppProcesses, SmtpServer, wait_until


def _stalled(digest_id: int, seconds: float) -> bool:
    """No claim on the send's rows and no progress of it within the last `seconds`."""
    stale = utcnow() - timedelta(seconds=seconds)
    with session_scope() as session:
        progress = session.scalar(select(Digest.progress_at).where(Digest.id == digest_id))
        claimed = session.scalar(
            select(func.max(Delivery.claimed_at)).where(
                Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.sending
            )
        )
    return all(at is None or at < stale for at in (progress, claimed))


def test_a_batch_delivered_twice_sends_each_message_once(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"twice{i}@example.org" for i in range(20)]
    digest_id = populate(emails)
    server = SmtpServer().start()
    app = AppProcesses(send_env(data_dir, server.url, sqlite_db, None), tmp_path)
    try:
        app.run("digest", "send", "--list", "news")  # enqueued before any worker runs
        app.run("sends", "resume", str(digest_id))  # the same ranges enqueued once more
        app.start_worker("--concurrency", "2")
        wait_status(app, digest_id)
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert sorted(counts) == sorted(emails) and set(counts.values()) == {1}
    finally:
        app.stop()
        server.stop()


def test_a_worker_killed_mid_batch_loses_no_one(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"kill{i}@example.org" for i in range(60)]
    digest_id = populate(emails)
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, sqlite_db, None)
    env |= {
        "NEWSLETTER_SEND_RATE": "20",
        "NEWSLETTER_SEND_BATCH_SIZE": "30",
        "NEWSLETTER_SEND_LEASE_SECONDS": "1",
        "NEWSLETTER_SEND_STALL_SECONDS": "1",
    }
    app = AppProcesses(env, tmp_path)
    try:
        worker = app.start_worker("--pool", "solo")
        app.run("digest", "send", "--list", "news")
        server.wait_for(lambda m: len(m) >= 10)
        os.kill(worker.pid, signal.SIGKILL)  # no goodbye, no ack, no ledger fold
        worker.wait()
        # Until the dead worker's claims and the send's last progress are older than the
        # lease and stall limits (1 s), as the database says: then it is stalled.
        wait_until(lambda: _stalled(digest_id, 1.0), 30, f"send {digest_id} to be stalled")
        app.start_worker("--pool", "solo")  # picks up the stalled send on start
        wait_status(app, digest_id)
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert sorted(counts) == sorted(emails), "a recipient was lost"
        # Only the one message on the wire of the one killed connection may repeat.
        assert sum(counts.values()) - len(emails) <= 1
    finally:
        app.stop()
        server.stop()
