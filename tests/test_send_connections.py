"""Many messages in flight per worker: a relay that answers each message after a second
still gets dozens at once from one `newsletter worker` started with no options; a relay
that caps its connections is respected; two workers split the connections between
them; SIGKILL loses nobody.

The relay is a small asyncio SMTP server in this file (PIPELINING, a delay before each
message's 250, an optional cap with 421 on connect) that counts what is open at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

from tests.send_support import populate, send_env, status, wait_status
from tests.services import AppProcesses, free_port, wait_until


class SlowRelay:
    """Answers each message's content after `delay` seconds; beyond `cap` connections
    open at once it greets with 421 and hangs up."""

    def __init__(self, delay: float, cap: int | None = None) -> None:
        self.delay = delay
        self.cap = cap
        self.port = free_port()
        self.rcpts: list[str] = []
        self.connections = self.peak_connections = 0
        self.opened = 0  # sessions greeted with 220 over the relay's life
        self.in_flight = self.peak_in_flight = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SlowRelay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def received(self) -> list[str]:
        with self._lock:
            return list(self.rcpts)

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", self.port)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cap is not None and self.connections >= self.cap:
            self.refused += 1
            writer.write(b"421 4.7.0 too many connections\r\n")
            await writer.drain()
            writer.close()
            return
        self.connections += 1
        self.opened += 1
        self.peak_connections = max(self.peak_connections, self.connections)
        try:
            await self._talk(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.connections -= 1
            writer.close()

    async def _talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 slow relay\r\n")
        rcpts: list[str] = []
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250-slow relay\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"MAIL":
                rcpts = []
                writer.write(b"250 ok\r\n")
            elif verb == b"RCPT":
                rcpts.append(line.decode().split("<", 1)[1].split(">", 1)[0])
                writer.write(b"250 ok\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                while (data := await reader.readline()) and data != b".\r\n":
                    pass
                if not data:
                    return  # the transaction never ended: nothing delivered
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                await writer.drain()
                await asyncio.sleep(self.delay)
                with self._lock:
                    self.rcpts.extend(rcpts)
                self.in_flight -= 1
                writer.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()


def _env(data_dir: Path, relay: SlowRelay, sqlite_db: str) -> dict[str, str]:
    env = send_env(data_dir, relay.url, sqlite_db, None)
    env["NEWSLETTER_SEND_BATCH_SIZE"] = "100"
    return env


def test_a_worker_with_no_options_keeps_dozens_of_messages_in_flight(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"slow{i}@example.org" for i in range(300)]
    digest_id = populate(emails)
    relay = SlowRelay(delay=1.0).start()
    app = AppProcesses(_env(data_dir, relay, sqlite_db), tmp_path)
    try:
        app.start_worker()  # prefork, one process per core: they split 50 connections
        app.run("digest", "send", "--list", "news")
        wait_status(app, digest_id, timeout=120)
        counts = Counter(relay.received())
        assert sorted(counts) == sorted(emails) and set(counts.values()) == {1}
        # One message per connection per second: 2 would be today's 2 connections.
        assert relay.peak_in_flight >= 20, relay.peak_in_flight
        assert relay.peak_connections <= 50
    finally:
        app.stop()
        relay.stop()


def test_a_relay_that_caps_its_connections_gets_no_more_and_every_message(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"capped{i}@example.org" for i in range(60)]
    digest_id = populate(emails)
    relay = SlowRelay(delay=0.05, cap=3).start()
    app = AppProcesses(_env(data_dir, relay, sqlite_db), tmp_path)
    try:
        app.start_worker()
        app.run("digest", "send", "--list", "news")
        wait_status(app, digest_id, timeout=120)
        counts = Counter(relay.received())
        assert sorted(counts) == sorted(emails) and set(counts.values()) == {1}
        assert relay.refused >= 1  # the workers did ask for more
        assert relay.peak_connections <= 3
    finally:
        app.stop()
        relay.stop()


def test_a_worker_killed_with_messages_in_flight_loses_no_one(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"inflight{i}@example.org" for i in range(200)]
    digest_id = populate(emails)
    relay = SlowRelay(delay=0.3).start()
    env = _env(data_dir, relay, sqlite_db) | {
        "NEWSLETTER_SEND_LEASE_SECONDS": "1",
        "NEWSLETTER_SEND_STALL_SECONDS": "1",
        "NEWSLETTER_SEND_CONNECTIONS": "10",
    }
    app = AppProcesses(env, tmp_path)
    try:
        worker = app.start_worker("--pool", "solo")
        app.run("digest", "send", "--list", "news")
        wait_until(lambda: len(relay.received()) >= 30, 60, "30 messages to arrive")
        os.kill(worker.pid, signal.SIGKILL)  # ten connections with a message each on the wire
        worker.wait()
        app.start_worker("--pool", "solo")
        wait_status(app, digest_id, timeout=120)
        counts = Counter(relay.received())
        assert sorted(counts) == sorted(emails), "a recipient was lost"
        # At most the message on the wire of each killed connection may repeat.
        assert sum(counts.values()) - len(emails) <= 10
    finally:
        app.stop()
        relay.stop()


def _open_to(pid: int, port: int) -> int:
    """Connections the process `pid` has established to the relay's port."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return 0
    return sum(1 for c in conns if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED")


def test_two_workers_split_the_connections_between_them(
    sqlite_db: str, data_dir: Path, tmp_path: Path, redis_url: str
) -> None:
    emails = [f"split{i}@example.org" for i in range(600)]
    digest_id = populate(emails)
    relay = SlowRelay(delay=1.0).start()
    env = send_env(data_dir, relay.url, sqlite_db, redis_url) | {
        "NEWSLETTER_SEND_BATCH_SIZE": "100",
        "NEWSLETTER_SEND_CONNECTIONS": "20",
    }
    app = AppProcesses(env, tmp_path)
    try:
        workers = [app.start_worker("--pool", "solo", name=f"worker{i}") for i in (1, 2)]
        for i in (1, 2):
            app.wait_ready(f"worker{i}")
        app.run("digest", "send", "--list", "news")
        fairest = 0  # the most connections both workers had at the same moment
        deadline = time.monotonic() + 120
        while status(app, digest_id)["status"] != "sent":
            assert time.monotonic() < deadline, f"not sent after 120 s: {status(app, digest_id)}"
            counts = [_open_to(w.pid, relay.port) for w in workers]
            fairest = max(fairest, min(counts))
            time.sleep(0.5)  # the sampling interval
        counts_by_rcpt = Counter(relay.received())
        assert sorted(counts_by_rcpt) == sorted(emails) and set(counts_by_rcpt.values()) == {1}
        assert relay.peak_connections <= 20  # the deployment's cap holds across workers
        # An even split is 10 each; the first worker to start must not keep 19 of them.
        assert fairest >= 8, fairest
        # Connections are kept from one batch to the next (six batches here): the relay
        # sees the first worker's 20, the second's 10 once the first gave 10 back, and few
        # more, not a new set per batch.
        assert relay.opened <= 36, relay.opened
    finally:
        app.stop()
        relay.stop()
