"""Real services for the tests: PostgreSQL, Redis, an SMTP server, the app's own processes.

PostgreSQL and Redis are used for real, and a test touches only what it creates: a
PostgreSQL database of its own (created and dropped), a Redis database on a redis-server
that the test session starts for itself on a free port (never the machine's Redis). On
CI (CI=true) a test that needs one fails when it cannot have it; on a laptop without
them it skips and says why.

Tests wait for what they need (`wait_until`), never a fixed time.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shutil
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
from typing import Any, TypeVar

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

PG_ADMIN_URL = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

T = TypeVar("T")


def unavailable(what: str, why: str, fix: str | None = None) -> None:
    """Fail on CI, skip elsewhere: CI must never silently skip a service test."""
    message = f"{what} is not available ({why})"
    if ON_CI:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(f"{message}; {fix or 'install or start it'} to run this test")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Past ``timeout`` seconds, fail naming ``what`` was awaited (and ``details()``, e.g. a
    process's log). The deadline is a limit, never a wait: it costs only when X is late.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            extra = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(interval)  # the polling interval, not a wait for X


# The xdist worker this process is ("gw0", "gw1", ...; "" when pytest runs alone): what
# keeps parallel workers apart in ports, database names and folders.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_WORKER_INDEX = int(WORKER[2:]) if WORKER[2:].isdigit() else 0

# Ports for the servers tests start: a block of this worker's own, below the kernel's
# ephemeral range (32768-60999), so that no other xdist worker, and no outgoing connection
# (which takes an ephemeral port), can take a port between free_port() and the server
# binding it. A random start inside the block keeps two separate pytest runs apart too.
_PORT_BLOCK = 1000
_PORT_BASE = 20000 + (_WORKER_INDEX % 12) * _PORT_BLOCK
_next_port = itertools.count(random.randrange(_PORT_BLOCK))


def free_port() -> int:
    """A loopback port nobody listens on, for a server the test is about to start."""
    for _ in range(_PORT_BLOCK):
        port = _PORT_BASE + next(_next_port) % _PORT_BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or still in TIME_WAIT): the next one
            return port
    with socket.socket() as s:  # the whole block busy: let the kernel choose
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
        unavailable(
            "PostgreSQL",
            str(exc).strip().splitlines()[0],
            "start it or set NEWSLETTER_TEST_POSTGRES_URL",
        )
    name = f"nl_test_{WORKER or 'main'}_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        try:
            yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
        finally:
            # FORCE ends connections the test's pool still holds.
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Redis -------------------------------------------------------------------------------


def _dies_with_us() -> list[str]:
    """A prefix that has the child sent SIGTERM when the test process dies, however it
    dies (SIGKILL, os._exit): util-linux's setpriv, where there is one (Linux)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


class RedisServer:
    """A redis-server of our own on a free loopback port, without persistence, as
    production may run it. Never the machine's Redis: tests touch only what they create.

    `stop()` then `start()` restarts it on the same port (with its data gone)."""

    def __init__(self, folder: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            unavailable(
                "redis-server",
                "no redis-server on PATH; the tests start one of their own",
                "install it (e.g. apt-get install redis-server)",
            )
        self.exe = str(exe)
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def url_for(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> RedisServer:
        import redis

        self.folder.mkdir(parents=True, exist_ok=True)
        # In the foreground, as our child: stopped with the session even if it crashes.
        self.proc = subprocess.Popen(
            [
                *_dies_with_us(),
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.folder / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=3)
        proc = self.proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"redis-server exited ({proc.returncode}):\n{self.log()}")
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_until(answers, 10, f"redis-server on port {self.port}", details=self.log)
        finally:
            client.close()
        return self

    def stop(self) -> None:
        import redis

        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            redis.Redis.from_url(self.url, socket_timeout=3).shutdown(nosave=True)
        except redis.RedisError:
            pass  # shutdown closes the connection it came on
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SessionRedis:
    """The test session's own redis-server, started on first need and stopped at the end.

    One per pytest process, so one per xdist worker. Its data dir is under the session's
    temp dir (conftest sets `folder`). Each test gets a database number of its own on it,
    flushed before and after: only this private server is ever flushed."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.server: RedisServer | None = None
        self._numbers = itertools.cycle(range(16))
        self._in_use: set[int] = set()

    def get(self) -> RedisServer:
        if self.server is None:
            if self.folder is None:
                import tempfile

                self.folder = Path(tempfile.mkdtemp(prefix="newsletter-redis-"))
            self.server = RedisServer(self.folder / "redis").start()
        elif self.server.proc is None or self.server.proc.poll() is not None:
            self.server.start()  # it died: the next test gets a live one again
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @contextmanager
    def database(self) -> Iterator[str]:
        import redis

        server = self.get()
        assert len(self._in_use) < 16, "more Redis databases at once than a server has"
        db = next(n for n in self._numbers if n not in self._in_use)
        url = server.url_for(db)
        client = redis.Redis.from_url(url, socket_timeout=3)
        self._in_use.add(db)
        try:
            client.flushdb()
            yield url
        finally:
            self._in_use.discard(db)
            try:
                client.flushdb()
            except redis.ConnectionError:
                pass  # a test that stopped the server left nothing to flush
            client.close()


SESSION_REDIS = SessionRedis()


@contextmanager
def redis_database() -> Iterator[str]:
    """A Redis database to the test itself, on the session's own redis-server."""
    with SESSION_REDIS.database() as url:
        yield url


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
    # (n, s): `defer` answers 451 only until s seconds after its n-th 451, on the server's
    # own clock, so a test's trouble ends on time however late the test thread runs.
    defer_window: tuple[int, float] | None = None
    # Offered by Postfix, Exim, Gmail and Microsoft alike; aiosmtpd handles pipelined
    # commands but does not advertise them by itself.
    pipelining: bool = True


class RecordingHandler:
    def __init__(self, rules: SmtpRules) -> None:
        self.rules = rules
        self.messages: list[Received] = []
        self.rcpts: list[tuple[float, str]] = []  # every RCPT TO asked, accepted or not
        self.deferred: list[float] = []  # when each 451 of `rules.defer` was answered
        self.lock = threading.Lock()

    def defer_ends(self) -> float | None:
        """When `rules.defer_window` stops the 451s (None: not yet known or no window)."""
        window = self.rules.defer_window
        with self.lock:
            if window is None or len(self.deferred) < window[0]:
                return None
            return self.deferred[window[0] - 1] + window[1]

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
        now = time.time()
        with self.lock:
            self.rcpts.append((now, addr))
        if addr in self.rules.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        ends = self.defer_ends()
        if addr in self.rules.defer and (ends is None or now < ends):
            with self.lock:
                self.deferred.append(now)
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
        def met() -> list[Received] | None:
            msgs = self.messages
            return msgs if predicate(msgs) else None

        return wait_until(
            met,
            timeout,
            "the SMTP server's messages to meet the test's condition",
            details=lambda: f"it has {len(self.messages)} messages",
        )

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
        done = subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"newsletter {' '.join(args)} exited {done.returncode}:\n{done.stderr}{done.stdout}"
            )
        return done

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

    def start_web(self, *extra: str) -> str:
        self._spawn("web", "--port", str(self.port), *extra, name="web")
        base = self.base_url

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        # A limit, not a wait: `--workers 2` on two busy cores has needed more than 30 s.
        wait_until(healthy, 60, f"web to answer {base}/healthz", details=lambda: self.log("web"))
        return base

    def start_worker(self, *extra: str, name: str = "worker") -> subprocess.Popen[bytes]:
        return self._spawn("worker", "--loglevel", "INFO", *extra, name=name)

    def wait_log(self, name: str, text: str, timeout: float = 30, count: int = 1) -> str:
        """Wait until the process `name` logged `text` (at least `count` times)."""
        return wait_until(
            lambda: (log := self.log(name)).count(text) >= count and log,
            timeout,
            f"{count}x {text!r} in {name}.log",
            interval=0.1,
            details=lambda: self.log(name),
        )

    def wait_ready(self, name: str = "worker", timeout: float = 30) -> None:
        """Wait for a worker's "ready." line: Celery logs it once the worker consumes,
        after its worker_ready handlers (start-up recovery) have run."""
        self.wait_log(name, " ready.", timeout)

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
