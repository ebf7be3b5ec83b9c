"""How long a fault holds a send up, with the default lease, heartbeat and checks.

Real parts only: `newsletter worker` and `newsletter beat` processes, the aiosmtpd server
of tests/services.py, Redis as the broker (a redis-server of the test's own) and
PostgreSQL. Each test measures the time from the fault's end (the kill, the database's
return) to the moment every reader has the digest and prints it (`pytest -s`).

- A worker SIGKILLed mid-batch: its claim's heartbeat stops, the claim lapses after
  SEND_LEASE_SECONDS and beat's claim check (every SEND_CLAIM_CHECK_SECONDS) hands the
  rows to the live worker; the journal says which were accepted already.
- PostgreSQL restarted mid-send: a PostgreSQL of the test's own (initdb + pg_ctl as the
  `postgres` user, on a free port in a temp dir; the machine's server is shared with
  other tests and is never touched), stopped for 10 s. The batch fails on the database
  error, runs again within seconds with its claim and takes its rows back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.db import session_scope
from newsletter.models import Delivery, DeliveryStatus
from tests.send_support import RedisServer, populate, send_env, wait_status
from tests.services import AppProcesses, SmtpServer, free_port, unavailable, wait_until

LIMIT = 30.0  # seconds from the fault's end to every reader served


def _env(data_dir: Path, smtp_url: str, database: str, broker: str) -> dict[str, str]:
    """The default engine settings: send_env's test speed-ups of retries and probes are
    not what is measured here, so they go; only what the scenario needs stays."""
    env = send_env(data_dir, smtp_url, database, broker)
    for name in (
        "NEWSLETTER_SEND_RETRY_BASE_SECONDS",
        "NEWSLETTER_SEND_MAX_ATTEMPTS",
        "NEWSLETTER_SEND_DOMAIN_BACKOFF_SECONDS",
        "NEWSLETTER_SEND_PROBE_SECONDS",
    ):
        del env[name]
    return env


def _served(server: SmtpServer, emails: list[str]) -> bool:
    return set(emails) <= {r for m in server.messages for r in m.rcpt_tos}


def _counts(server: SmtpServer) -> Counter[str]:
    return Counter(r for m in server.messages for r in m.rcpt_tos)


def test_a_killed_workers_rows_are_served_within_30s(
    postgres_db: str, own_redis: RedisServer, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"dead{i}@example.org" for i in range(40)]
    digest_id = populate(emails)
    server = SmtpServer().start()
    env = _env(data_dir, server.url, postgres_db, own_redis.url)
    env |= {
        # Two batches, one per worker, about four seconds each: the kill lands mid-batch.
        "NEWSLETTER_SEND_BATCH_SIZE": "20",
        "NEWSLETTER_SEND_RATE": "10",
    }
    app = AppProcesses(env, tmp_path)
    try:
        alpha = app.start_worker("--pool", "solo", "-n", "alpha@%h", name="alpha")
        app.start_worker("--pool", "solo", "-n", "beta@%h", name="beta")
        app.wait_ready("alpha")
        app.wait_ready("beta")
        app._spawn("beat", "--loglevel", "INFO", name="beat")
        app.run("digest", "send", "--list", "news")
        wait_until(
            lambda: "send_batch" in app.log("alpha") and len(server.messages) >= 8,
            30,
            "alpha to be sending its batch",
            details=lambda: app.log("alpha"),
        )
        os.kill(alpha.pid, signal.SIGKILL)  # no goodbye, no ack, no ledger fold
        killed = time.monotonic()
        alpha.wait()
        assert "succeeded" not in app.log("alpha"), "alpha was not mid-batch"
        with session_scope() as session:
            held = session.scalar(
                select(func.count()).where(
                    Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.sending
                )
            )
        assert held, "no row was left claimed by the killed worker"
        wait_until(
            lambda: _served(server, emails),
            LIMIT + 30,
            "every reader to be served",
            interval=0.1,
            details=lambda: app.log("beta"),
        )
        took = time.monotonic() - killed
        print(f"\n[faults] SIGKILL mid-batch: every reader served {took:.1f}s after the kill")
        assert took <= LIMIT, f"served {took:.1f}s after the kill"
        st = wait_status(app, digest_id, timeout=60)
        assert (st["sent"], st["queued"], st["failed"]) == (40, 0, 0), st
        counts = _counts(server)
        assert sorted(counts) == sorted(emails), "a recipient was lost"
        # Only the message on the wire of the one killed connection may repeat.
        assert sum(counts.values()) - len(emails) <= 1, counts.most_common(3)
    finally:
        app.stop()
        server.stop()


class PrivatePostgres:
    """A PostgreSQL server of the test's own, run as the `postgres` user (initdb refuses
    root) in a temp dir on a free port; `stop()` then `start()` restarts it."""

    BIN = Path("/usr/lib/postgresql/15/bin")

    def __init__(self) -> None:
        if not (self.BIN / "initdb").exists():
            unavailable("PostgreSQL 15 binaries", f"no {self.BIN / 'initdb'}")
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                unavailable("runuser", "needed to run PostgreSQL as postgres from root")
            self.as_user = [str(runuser), "-u", "postgres", "--"]
        self.folder = Path(tempfile.mkdtemp(prefix="nl-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.BIN / tool), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=200"
        )
        log = str(self.folder / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, PrivatePostgres]]:
    """A migrated database on a PostgreSQL server of the test's own; the test process
    uses it too (populate, the checks)."""
    import psycopg

    from newsletter import db
    from newsletter.config import get_settings
    from newsletter.migrate import upgrade

    try:
        pg = PrivatePostgres()
        pg.start()
    except (subprocess.CalledProcessError, OSError) as exc:
        unavailable("a private PostgreSQL", str(exc))
    try:
        with psycopg.connect(pg.admin_url, autocommit=True) as admin:
            admin.execute('CREATE DATABASE "faults"')
        url = pg.url("faults")
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
        get_settings.cache_clear()
        db.reset()
        upgrade(url)
        yield url, pg
    finally:
        get_settings.cache_clear()
        db.reset()
        pg.destroy()


def test_a_send_resumes_within_30s_of_the_databases_return(
    private_postgres: tuple[str, PrivatePostgres],
    own_redis: RedisServer,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    database, pg = private_postgres
    emails = [f"outage{i}@example.org" for i in range(60)]
    digest_id = populate(emails)
    server = SmtpServer().start()
    env = _env(data_dir, server.url, database, own_redis.url)
    env |= {
        # Three batches of 20 at 5 messages a second: twelve seconds of sending.
        "NEWSLETTER_SEND_BATCH_SIZE": "20",
        "NEWSLETTER_SEND_RATE": "5",
    }
    app = AppProcesses(env, tmp_path)
    try:
        app.start_worker("--pool", "solo")
        app.wait_ready("worker")
        app._spawn("beat", "--loglevel", "INFO", name="beat")
        app.run("digest", "send", "--list", "news")
        server.wait_for(lambda m: len(m) >= 10)
        from newsletter import db

        db.reset()  # the test's own pool must not hold connections across the restart
        pg.stop()
        down = len(server.messages)
        time.sleep(10)  # the outage itself, the test's subject
        pg.start()
        back = time.monotonic()
        wait_until(
            lambda: _served(server, emails),
            LIMIT + 30,
            "every reader to be served",
            interval=0.1,
            details=lambda: app.log("worker"),
        )
        took = time.monotonic() - back
        print(
            f"\n[faults] PostgreSQL down 10s ({down} sent before): every reader served"
            f" {took:.1f}s after its return"
        )
        assert took <= LIMIT, f"served {took:.1f}s after the database's return"
        st = wait_status(app, digest_id, timeout=60)
        assert (st["sent"], st["queued"], st["failed"]) == (60, 0, 0), st
        counts = _counts(server)
        assert sorted(counts) == sorted(emails), "a recipient was lost"
        # At most the one message on the wire of the one SMTP connection.
        assert sum(counts.values()) - len(emails) <= 1, counts.most_common(3)
    finally:
        app.stop()
        server.stop()


def test_a_send_resumes_within_30s_of_the_brokers_return(
    postgres_db: str, own_redis: RedisServer, data_dir: Path, tmp_path: Path
) -> None:
    """Redis, the broker, is down for 10 s mid-send and comes back empty (no persistence,
    as production may run it): the batches queued in it are gone with it."""
    emails = [f"broker{i}@example.org" for i in range(60)]
    digest_id = populate(emails)
    server = SmtpServer().start()
    env = _env(data_dir, server.url, postgres_db, own_redis.url)
    env |= {
        # Three batches of 20 at 5 messages a second: twelve seconds of sending.
        "NEWSLETTER_SEND_BATCH_SIZE": "20",
        "NEWSLETTER_SEND_RATE": "5",
    }
    app = AppProcesses(env, tmp_path)
    try:
        app.start_worker("--pool", "solo")
        app.wait_ready("worker")
        app._spawn("beat", "--loglevel", "INFO", name="beat")
        app.run("digest", "send", "--list", "news")
        server.wait_for(lambda m: len(m) >= 10)
        own_redis.stop()
        down = len(server.messages)
        time.sleep(10)  # the outage itself, the test's subject
        own_redis.start()
        back = time.monotonic()
        wait_until(
            lambda: _served(server, emails),
            LIMIT + 60,
            "every reader to be served",
            interval=0.1,
            details=lambda: app.log("worker") + app.log("beat"),
        )
        took = time.monotonic() - back
        print(
            f"\n[faults] Redis broker down 10s and back empty ({down} sent before): every"
            f" reader served {took:.1f}s after its return"
        )
        assert took <= LIMIT, f"served {took:.1f}s after the broker's return"
        st = wait_status(app, digest_id, timeout=60)
        assert (st["sent"], st["queued"], st["failed"]) == (60, 0, 0), st
        counts = _counts(server)
        assert sorted(counts) == sorted(emails), "a recipient was lost"
        assert sum(counts.values()) - len(emails) <= 1, counts.most_common(3)
    finally:
        app.stop()
        server.stop()
