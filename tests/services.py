"""Real services for the tests: PostgreSQL, Redis, an SMTP server, the app's own processes.

PostgreSQL and Redis are used for real. On CI (CI=true) a test that needs one fails when
it cannot reach it; on a laptop without them it skips and says why.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

PG_ADMIN_URL = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("NEWSLETTER_TEST_REDIS_URL", "redis://127.0.0.1:6379")
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str, why: str) -> None:
    """Fail on CI, skip elsewhere: CI must never silently skip a service test."""
    message = f"{what} is not reachable ({why})"
    if ON_CI:
        pytest.fail(f"{message}; CI=true requires it")
    pytest.skip(f"{message}; start it or set the NEWSLETTER_TEST_* URL to run this test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# PostgreSQL ------------------------------------------------------------------------


@contextmanager
def postgres_database() -> Iterator[str]:
    """A brand-new database for one test, dropped afterwards."""
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", str(exc).strip().splitlines()[0])
    name = f"nl_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        try:
            yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
        finally:
            # FORCE ends connections the test's pool still holds.
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Redis -------------------------------------------------------------------------------


@contextmanager
def redis_database() -> Iterator[str]:
    """A Redis database number to itself, flushed before and after."""
    import redis

    db = 1 + (os.getpid() % 14)
    url = f"{REDIS_URL}/{db}"
    client = redis.Redis.from_url(url, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", str(exc))
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()


# SMTP ---------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float = field(default_factory=time.time)  # when the server accepted the data

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=default)  # type: ignore[return-value]


@dataclass
class SmtpRules:
    """How the test server answers chosen recipients: accept, 550, 451 or hang up."""

    reject: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    drop: set[str] = field(default_factory=set)
    # Offered by Postfix, Exim, Gmail and Microsoft alike; aiosmtpd handles pipelined
    # commands but does not advertise them by itself.
    pipelining: bool = True


class RecordingHandler:
    def __init__(self, rules: SmtpRules) -> None:
        self.rules = rules
        self.messages: list[Received] = []
        self.rcpts: list[tuple[float, str]] = []  # every RCPT TO asked, accepted or not
        self.lock = threading.Lock()

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.rules.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        addr = address.lower()
        with self.lock:
            self.rcpts.append((time.time(), addr))
        if addr in self.rules.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if addr in self.rules.defer:
            return f"451 4.7.1 <{address}>: Please try again later (greylisted)"
        if addr in self.rules.drop:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 closing connection"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 OK: queued"


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a free loopback port, recording what it accepts."""

    def __init__(self, rules: SmtpRules | None = None) -> None:
        self.rules = rules or SmtpRules()
        self.handler = RecordingHandler(self.rules)
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def attempts(self, domain: str) -> list[float]:
        """When RCPT TO was asked for addresses at `domain`, whatever the answer."""
        with self.handler.lock:
            return [at for at, addr in self.handler.rcpts if addr.endswith("@" + domain)]

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address.lower() in [r.lower() for r in m.rcpt_tos]]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.messages
            if predicate(msgs):
                return msgs
            time.sleep(0.05)
        raise AssertionError(f"SMTP server: condition not met in {timeout}s; got {len(msgs)} msgs")

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        asyncio.set_event_loop(None)


# The app's own processes ----------------------------------------------------------------


class AppProcesses:
    """`newsletter web` and `newsletter worker` started as an operator would, with an env."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "NEWSLETTER_BASE_URL": self.base_url, **env}
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def _spawn(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", *args],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def start_web(self) -> str:
        self._spawn("web", "--port", str(self.port), name="web")
        base = self.base_url
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("web did not start:\n" + self.log("web"))

    def start_worker(self, *extra: str, name: str = "worker") -> subprocess.Popen[bytes]:
        return self._spawn("worker", "--loglevel", "INFO", *extra, name=name)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
