"""`newsletter bounce-server --processes N`: several server processes on one port, as an
operator runs them. Every DSN is answered 250 only once stored, whichever process took
its connection; stopping the command stops every process and frees the port; a server
process that dies, or a parent killed outright, leaves no process behind holding the port.
PostgreSQL: several writers side by side is what it is for."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from newsletter.config import Settings
from tests.bounce_support import (
    Sent,
    bounce_settings_fixture,  # noqa: F401 - the bounce_settings fixture
    corpus,
    events_for,
    is_suppressed,
    send_digest,
    subscriber_state,
)
from tests.services import free_port, wait_until

HARD = next(raw for _, raw, kind in corpus() if kind == "hard")
SOFT = next(raw for _, raw, kind in corpus() if kind == "soft")
ON_POSTGRES = pytest.mark.parametrize("database", ["postgresql"], indirect=True)


def _start(tmp_path: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "bounce-server.log", "wb")  # noqa: SIM115 - lives with the process
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "bounce-server", "--port", str(port), *extra],
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _greets(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5):
            return True
    except (OSError, smtplib.SMTPException):
        return False


@pytest.fixture
def two_processes(
    tmp_path: Path, bounce_settings: Settings
) -> Iterator[tuple[int, psutil.Process]]:
    port = free_port()
    proc = _start(tmp_path, port, "--processes", "2")
    command = psutil.Process(proc.pid)
    log = tmp_path / "bounce-server.log"
    try:
        wait_until(lambda: _greets(port), 30, "the bounce-server's greeting", details=log.read_text)
        wait_until(lambda: len(command.children()) == 2, 10, "two server processes")
        yield port, command
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(15)


def _send(port: int, rcpt: str, raw: bytes) -> int:
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        try:
            smtp.sendmail("", [rcpt], crlf)
        except smtplib.SMTPResponseException as exc:
            return exc.smtp_code
    return 250


def _port_free(port: int) -> bool:
    """Nobody listens: a connection is refused (binding alone would meet the closed
    sessions' TIME_WAIT)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@ON_POSTGRES
def test_two_processes_store_every_dsn_before_its_250_and_stop_together(
    two_processes: tuple[int, psutil.Process], bounce_settings: Settings
) -> None:
    port, command = two_processes
    children = command.children()
    sends = send_digest([f"reader{i}@example.org" for i in range(24)])

    def one(sent: Sent) -> tuple[int, int]:
        code = _send(port, sent.verp(bounce_settings), HARD)
        return code, len(events_for(sent.delivery_id))  # read at once, after the 250

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, sends))
    assert answers == [(250, 1)] * len(sends)
    assert all(subscriber_state(s.email)[0] == "bounced" for s in sends)

    command.send_signal(signal.SIGTERM)
    assert command.wait(30) == 0
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert _port_free(port)


@ON_POSTGRES
def test_soft_bounces_for_one_reader_in_two_processes_count_as_one_at_a_time(
    two_processes: tuple[int, psutil.Process], bounce_settings: Settings
) -> None:
    # Each reader's three digests soft-bounce at once, over connections both processes
    # take: the third bounce reaches the limit (3) and suppresses, as one at a time.
    readers = [f"reader{i}@example.org" for i in range(16)]
    sends = [s for i in range(3) for s in send_digest(readers, subject=f"D{i}")]
    port = two_processes[0]
    with ThreadPoolExecutor(len(sends)) as pool:
        codes = list(pool.map(lambda s: _send(port, s.verp(bounce_settings), SOFT), sends))
    assert codes == [250] * len(sends)
    assert [subscriber_state(r)[:2] for r in readers] == [("bounced", 3)] * len(readers)
    assert all(is_suppressed(r) for r in readers)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_several_processes_on_sqlite_are_refused_with_one_line(
    tmp_path: Path, bounce_settings: Settings
) -> None:
    proc = _start(tmp_path, free_port(), "--processes", "2")
    assert proc.wait(60) == 2
    lines = (tmp_path / "bounce-server.log").read_text().strip().splitlines()
    assert len(lines) == 1 and "--processes above 1 needs PostgreSQL" in lines[0], lines


@ON_POSTGRES
def test_a_server_process_that_dies_stops_the_command_with_status_1(
    two_processes: tuple[int, psutil.Process],
) -> None:
    port, command = two_processes
    first, second = command.children()
    first.kill()
    assert command.wait(30) == 1  # a service manager restarts the whole server
    wait_until(lambda: not second.is_running(), 10, "the other server process to stop")
    assert _port_free(port)


@ON_POSTGRES
def test_killing_the_command_outright_stops_its_server_processes(
    two_processes: tuple[int, psutil.Process],
) -> None:
    port, command = two_processes
    children = command.children()
    command.kill()
    command.wait(10)
    for child in children:
        wait_until(lambda c=child: not c.is_running(), 10, "a server process to stop")
    wait_until(lambda: _port_free(port), 10, "the port to be free")


@ON_POSTGRES
def test_a_port_in_use_is_refused_with_one_line(tmp_path: Path, bounce_settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start(tmp_path, port, "--processes", "2")
        assert proc.wait(60) == 1  # a service error, as with one process
    lines = (tmp_path / "bounce-server.log").read_text().strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], lines
