"""The send survives what production does to it: more machines, a broker restart, beats.

Real parts only: `newsletter worker` and `newsletter beat` processes, the aiosmtpd server
of tests/services.py, PostgreSQL with Redis (a redis-server of the test's own where the
test restarts it) or the embedded default.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

from tests.send_support import RedisServer, populate, send_env, wait_status
from tests.services import AppProcesses, SmtpServer, wait_until

FIXTURES = Path(__file__).parent / "fixtures" / "stories"
SENT_LINE = re.compile(r"send_batch\[[^\]]+\] succeeded in [\d.]+s: \{'sent': (\d+)")


def _sent_by(app: AppProcesses, name: str) -> int:
    """What one worker reports it sent, from its own log as an operator would read it."""
    return sum(int(n) for n in SENT_LINE.findall(app.log(name)))


def _ticks_sent(log: Path) -> int:
    """How often a beat sent its send-tick, from its log."""
    return log.read_text(errors="replace").count("send-tick") if log.exists() else 0


TICK_RUN = re.compile(r"send_tick\[[^\]]+\] succeeded")


def _ticks_run(app: AppProcesses) -> int:
    """How many send-ticks the worker has run, from its log."""
    return len(TICK_RUN.findall(app.log("worker")))


def _wait_ready(app: AppProcesses, *names: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(" ready." in app.log(n) for n in names):
            return
        time.sleep(0.1)
    raise AssertionError("workers did not start:\n" + "\n".join(app.log(n) for n in names))


def test_two_workers_on_two_machines_send_each_message_once(
    postgres_db: str, own_redis: RedisServer, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"host{i}@example.org" for i in range(40)]
    digest_id = populate(emails)
    server = SmtpServer().start()
    machines = []
    for name in ("alpha", "beta"):
        home = tmp_path / name
        (home / "data").mkdir(parents=True)
        env = send_env(home / "data", server.url, postgres_db, own_redis.url)
        env["NEWSLETTER_SEND_BATCH_SIZE"] = "4"
        machines.append(AppProcesses(env, home))
    alpha, beta = machines
    try:
        alpha.start_worker("--concurrency", "1", "-n", "alpha@machine-a", name="worker")
        beta.start_worker("--concurrency", "1", "-n", "beta@machine-b", name="worker")
        _wait_ready(alpha, "worker")
        _wait_ready(beta, "worker")
        started = json.loads(alpha.run("digest", "send", "--list", "news", "--json").stdout)
        assert started["total"] == 40
        st = wait_status(beta, digest_id)
        assert (st["sent"], st["queued"], st["failed"]) == (40, 0, 0)
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert sorted(counts) == sorted(emails) and set(counts.values()) == {1}
        assert "alpha@machine-a" in alpha.log("worker") and "beta@machine-b" in beta.log("worker")
        by_alpha, by_beta = _sent_by(alpha, "worker"), _sent_by(beta, "worker")
        assert by_alpha > 0 and by_beta > 0, (by_alpha, by_beta)
        assert by_alpha + by_beta == 40
    finally:
        alpha.stop()
        beta.stop()
        server.stop()


def test_a_due_schedule_sends_once_even_with_two_beats(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, sqlite_db, None)
    env["NEWSLETTER_BEAT_TICK_SECONDS"] = "0.5"
    app = AppProcesses(env, tmp_path)
    readers = ["early@example.org", "late@example.org"]
    try:
        app.run("lists", "create", "daily", "--name", "Daily", "--schedule", "* * * * *")
        for email in readers:
            app.run("subscribers", "add", email, "--list", "daily", "--confirmed")
        app.run("stories", "add", str(FIXTURES / "bakhmut.txt"), "--list", "daily")
        # Two beats, as when a deployment by mistake runs a second one elsewhere.
        second = tmp_path / "second"
        second.mkdir()
        app._spawn("beat", "--loglevel", "INFO", name="beat1")
        beat2 = subprocess.Popen(
            [*_newsletter(), "beat", "--loglevel", "INFO"],
            env={**app.env, "NEWSLETTER_DATA_DIR": str(data_dir)},
            cwd=second,
            stdout=(second / "beat2.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        app.procs.append(beat2)
        app.start_worker("--concurrency", "1")
        server.wait_for(lambda m: len(m) >= 2, timeout=60)
        # Three more ticks of each beat, all run by the worker: nothing more arrives.
        beats = [tmp_path / "beat1.log", second / "beat2.log"]
        sent_before = [_ticks_sent(log) for log in beats]
        ran_before = _ticks_run(app)

        def ticked() -> bool:
            sent = [_ticks_sent(log) for log in beats]
            more = [now - before for now, before in zip(sent, sent_before, strict=True)]
            return min(more) >= 3 and _ticks_run(app) >= ran_before + 6

        wait_until(
            ticked,
            30,
            "three more send-ticks of each beat, run by the worker",
            interval=0.1,
            details=lambda: "\n".join(log.read_text() for log in beats) + app.log("worker"),
        )
        assert beat2.poll() is None, (second / "beat2.log").read_text()
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert counts == Counter(readers), counts
        sends = json.loads(app.run("sends", "list", "--json").stdout)
        assert len(sends) == 1 and sends[0]["list"] == "daily"
        assert sends[0]["status"] == "sent" and sends[0]["sent"] == 2
        assert "send-tick" in (second / "beat2.log").read_text(), "the second beat never ticked"
    finally:
        app.stop()
        server.stop()


def _newsletter() -> list[str]:
    import sys

    return [sys.executable, "-m", "newsletter"]


def test_a_redis_restart_mid_send_loses_no_one(
    postgres_db: str, own_redis: RedisServer, data_dir: Path, tmp_path: Path
) -> None:
    """Redis runs without persistence: a restart wipes the journal, the queued batch
    messages and the rate windows. What the engine guarantees then:

    - batches in flight keep sending: the rate cap and the domain backoff fall back to
      per-process bookkeeping, and accepts that cannot reach the journal are written to
      the ledger at once (so nothing accepted depends on the wiped journal);
    - batch messages lost with Redis are enqueued again by beat's send-tick once the send
      made no progress for SEND_STALL_SECONDS (claimed rows after SEND_LEASE_SECONDS);
    - so every reader gets the digest, and a repeat is at most the message on the wire of
      each SMTP connection. Not covered: Redis restarting and, before that batch's next
      ledger write, its worker dying too; the accepts since the last write are then sent
      again (at most one batch, or FLUSH_SECONDS of a rate-capped one).
    """
    emails = [f"restart{i}@example.org" for i in range(80)]
    digest_id = populate(emails)
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, postgres_db, own_redis.url)
    env |= {
        "NEWSLETTER_SEND_RATE": "20",  # four seconds of sending: the restart lands mid-send
        "NEWSLETTER_SEND_LEASE_SECONDS": "3",
        "NEWSLETTER_SEND_STALL_SECONDS": "2",
        "NEWSLETTER_BEAT_TICK_SECONDS": "0.5",
    }
    app = AppProcesses(env, tmp_path)
    try:
        app.start_worker("--concurrency", "2")
        app._spawn("beat", "--loglevel", "INFO", name="beat")
        _wait_ready(app, "worker")
        app.run("digest", "send", "--list", "news")
        server.wait_for(lambda m: len(m) >= 20)
        own_redis.stop()  # the journal, the queued batches and the rate windows are gone
        time.sleep(1)  # the outage itself, the test's subject: the send goes on without Redis
        own_redis.start()
        st = wait_status(app, digest_id, timeout=60)
        assert (st["sent"], st["queued"], st["failed"]) == (80, 0, 0), st
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert sorted(counts) == sorted(emails), "a recipient was lost"
        # At most the one message on the wire per SMTP connection (two worker processes).
        assert sum(counts.values()) - len(emails) <= 2, counts.most_common(5)
    finally:
        app.stop()
        server.stop()
