"""A kept SMTP connection the server closed while idle is reopened at once: the message
that finds it closed is sent (not deferred for a minute), and exactly once; a drop after
a message's content was written stays "deferred" (it may have been accepted)."""

from __future__ import annotations

import asyncio
import smtplib
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from newsletter.config import SmtpConfig
from newsletter.db import session_scope
from newsletter.mail.smtp import SmtpTransport
from newsletter.models import Delivery, Digest
from newsletter.sending.transport import Envelope as Env
from newsletter.sending.transport import Pipeline, PooledTransport
from tests.send_support import HTML, TEXT, populate, send_env, wait_status
from tests.services import AppProcesses, RecordingHandler, SmtpRules, SmtpServer

SENDER = "bounces@example.com"


class IdleHandler(RecordingHandler):
    """Records every connection, so the test can close them as an idle timeout does;
    counts NOOPs; can hang up once at RCPT TO of chosen addresses, or right after a
    message's content without replying."""

    def __init__(self, rules: SmtpRules) -> None:
        super().__init__(rules)
        self.sessions: list[SMTP] = []
        self.noops = 0
        self.drop_rcpt_once: set[str] = set()
        self.drop_after_content = False

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        with self.lock:
            self.sessions.append(server)
        return await super().handle_EHLO(server, session, envelope, hostname, responses)

    async def handle_NOOP(
        self, server: SMTP, session: Session, envelope: Envelope, arg: str
    ) -> str:
        with self.lock:
            self.noops += 1
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.lower() in self.drop_rcpt_once:
            self.drop_rcpt_once.discard(address.lower())
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 closing connection"
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)  # recorded: accepted
        if self.drop_after_content:
            assert server.transport is not None
            server.transport.close()  # ... but the reply never reaches the client
        return reply


class IdleServer(SmtpServer):
    def __init__(self, timeout: float = 300) -> None:
        super().__init__(SmtpRules(pipelining=True))
        self.handler = IdleHandler(self.rules)
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, timeout=timeout
        )

    @property
    def idle(self) -> IdleHandler:
        assert isinstance(self.handler, IdleHandler)
        return self.handler

    def close_connections(self, say_421: bool = False) -> int:
        """What a server does to a connection idle past its timeout (Postfix says
        "421 4.4.2 Error: timeout exceeded" first, aiosmtpd just closes). Returns how
        many were open."""

        async def close_all() -> int:
            with self.idle.lock:
                sessions, self.idle.sessions[:] = list(self.idle.sessions), []
            closed = 0
            for server in sessions:
                if server.transport is None or server.transport.is_closing():
                    continue
                if say_421:
                    await server.push("421 4.4.2 Error: timeout exceeded")
                server.transport.close()
                closed += 1
            await asyncio.sleep(0.05)  # the FIN on its way before the client writes again
            return closed

        loop = self.controller.loop
        return asyncio.run_coroutine_threadsafe(close_all(), loop).result(5)


@pytest.fixture
def server() -> Any:
    s = IdleServer().start()
    yield s
    s.stop()


def wire(n: int) -> bytes:
    body = f"Subject: message {n}\r\n\r\nHello {n}\r\n.a line with a dot\r\n"
    return body.replace("\r\n.", "\r\n..").encode() + b".\r\n"


def received(server: SmtpServer) -> list[str]:
    return sorted(r for m in server.messages for r in m.rcpt_tos)


def timed(label: str, call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = call()
    took = time.perf_counter() - start
    print(f"{label}: {took * 1000:.1f} ms")
    return result, took


@pytest.mark.parametrize("say_421", [False, True], ids=["closed", "421-then-closed"])
def test_first_message_after_an_idle_drop_is_sent_at_once(
    server: IdleServer, say_421: bool
) -> None:
    transport = PooledTransport(SmtpConfig(server.url))
    try:
        assert transport.deliver(wire(1), SENDER, "a@example.org").status == "sent"
        first_conn = transport.connection
        assert server.close_connections(say_421) == 1
        attempt, took = timed(
            "first message after the drop",
            lambda: transport.deliver(wire(2), SENDER, "b@example.org"),
        )
        assert attempt.status == "sent", attempt
        assert took < 1.0
        assert transport.connection is not first_conn  # a fresh one
        assert transport.deliver(wire(3), SENDER, "c@example.org").status == "sent"
    finally:
        transport.close()
    assert received(server) == ["a@example.org", "b@example.org", "c@example.org"]


def test_a_real_idle_timeout_of_the_server(tmp_path: Any) -> None:
    server = IdleServer(timeout=0.5).start()  # aiosmtpd's own idle timeout (300 s default)
    transport = PooledTransport(SmtpConfig(server.url))
    try:
        assert transport.deliver(wire(1), SENDER, "a@example.org").status == "sent"
        time.sleep(1.0)
        attempt, took = timed(
            "after aiosmtpd's idle timeout",
            lambda: transport.deliver(wire(2), SENDER, "b@example.org"),
        )
        assert attempt.status == "sent", attempt
        assert took < 1.0
    finally:
        transport.close()
        server.stop()
    assert received(server) == ["a@example.org", "b@example.org"]


def run_pipeline(transport: PooledTransport, rcpts: list[str]) -> list[tuple[str, float]]:
    """As the batch does: each message primes the next one's envelope."""
    pipeline: Pipeline[str] = Pipeline(transport, rcpts, lambda r: Env(SENDER, r), lambda r: True)
    out: list[tuple[str, float]] = []
    try:
        for i in range(len(rcpts)):
            start = time.perf_counter()
            attempt = pipeline.send(i, wire(i))
            out.append((attempt.status, time.perf_counter() - start))
    finally:
        pipeline.close()
    return out


def test_through_the_pipeline_between_two_batches(server: IdleServer) -> None:
    transport = PooledTransport(SmtpConfig(server.url))
    first = [f"p{i}@example.org" for i in range(4)]
    second = [f"q{i}@example.org" for i in range(4)]
    try:
        assert [s for s, _ in run_pipeline(transport, first)] == ["sent"] * 4
        server.close_connections(say_421=True)
        outcomes = run_pipeline(transport, second)
    finally:
        transport.close()
    print(f"first message of the next batch after the drop: {outcomes[0][1] * 1000:.1f} ms")
    assert [s for s, _ in outcomes] == ["sent"] * 4
    assert outcomes[0][1] < 1.0
    assert received(server) == sorted(first + second)  # each exactly once
    assert server.idle.noops == 0  # a busy connection costs no extra round trip


def test_a_primed_envelope_answered_by_a_disconnect(server: IdleServer) -> None:
    """The server hangs up on the envelope that rode along with the last content: the
    content before it was accepted, and the primed message is sent on a fresh one."""
    transport = PooledTransport(SmtpConfig(server.url))
    rcpts = [f"r{i}@example.org" for i in range(4)]
    server.idle.drop_rcpt_once.add("r2@example.org")
    try:
        outcomes = run_pipeline(transport, rcpts)
    finally:
        transport.close()
    print(f"message whose primed envelope met a hang-up: {outcomes[2][1] * 1000:.1f} ms")
    assert [s for s, _ in outcomes] == ["sent"] * 4
    assert received(server) == rcpts


def test_an_idle_primed_connection_is_reopened_before_its_content(server: IdleServer) -> None:
    """Its envelope was answered long ago: the content would learn of a closed
    connection only once written. Idle past the check, it is reopened instead."""
    transport = PooledTransport(SmtpConfig(server.url))
    transport.idle_check_seconds = 0.3
    try:
        first = transport.deliver(wire(1), SENDER, "a@example.org", (SENDER, "b@example.org"))
        assert first.status == "sent"
        time.sleep(0.5)
        server.close_connections()
        attempt, took = timed(
            "primed, idle and dropped",
            lambda: transport.deliver(wire(2), SENDER, "b@example.org"),
        )
        assert attempt.status == "sent", attempt
        assert took < 1.0
    finally:
        transport.close()
    assert received(server) == ["a@example.org", "b@example.org"]


def test_an_idle_connection_gets_a_noop_and_is_kept_if_alive(server: IdleServer) -> None:
    transport = PooledTransport(SmtpConfig(server.url))
    transport.idle_check_seconds = 0.3
    try:
        for n in range(3):  # busy: no NOOP
            assert transport.deliver(wire(n), SENDER, f"b{n}@example.org").status == "sent"
        assert server.idle.noops == 0
        conn = transport.connection
        time.sleep(0.5)
        assert transport.deliver(wire(9), SENDER, "late@example.org").status == "sent"
        assert server.idle.noops == 1
        assert transport.connection is conn  # alive: kept
        time.sleep(0.5)
        server.close_connections()
        assert transport.deliver(wire(10), SENDER, "later@example.org").status == "sent"
        assert transport.connection is not conn
    finally:
        transport.close()
    assert len(server.messages) == 5


def test_a_drop_after_the_content_is_deferred_and_not_resent(server: IdleServer) -> None:
    transport = PooledTransport(SmtpConfig(server.url))
    try:
        assert transport.deliver(wire(1), SENDER, "a@example.org").status == "sent"
        server.idle.drop_after_content = True
        attempt, took = timed(
            "dropped after the content",
            lambda: transport.deliver(wire(2), SENDER, "b@example.org"),
        )
        assert attempt.status == "deferred"
        assert attempt.code is None and "connection lost" in (attempt.reply or "")
        server.idle.drop_after_content = False
        assert transport.deliver(wire(3), SENDER, "c@example.org").status == "sent"
    finally:
        transport.close()
    # The server did take b: one copy, none sent again by the transport.
    assert received(server) == ["a@example.org", "b@example.org", "c@example.org"]


def confirmation(n: int) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = f"Confirm {n}"
    msg["From"] = "news@example.com"
    msg.set_content(f"Please confirm {n}.\n.a dotted line\n")
    return msg.as_bytes(policy=SMTP_POLICY)  # CRLF, as the app's mail


def test_smtp_transport_reconnects_after_an_idle_drop(server: IdleServer) -> None:
    transport = SmtpTransport(SmtpConfig(server.url))
    try:
        assert transport.send(confirmation(1), SENDER, ["a@example.org"]) == {}
        server.close_connections(say_421=True)
        refused, took = timed(
            "confirmation after the drop",
            lambda: transport.send(confirmation(2), SENDER, ["b@example.org"]),
        )
        assert refused == {}
        assert took < 1.0
        server.close_connections()
        assert transport.send(confirmation(3), SENDER, ["c@example.org"]) == {}
    finally:
        transport.close()
    assert received(server) == ["a@example.org", "b@example.org", "c@example.org"]
    assert [m.message.get_content().splitlines()[1] for m in server.messages] == [
        ".a dotted line"
    ] * 3


def test_smtp_transport_does_not_resend_after_the_content(server: IdleServer) -> None:
    transport = SmtpTransport(SmtpConfig(server.url))
    try:
        assert transport.send(confirmation(1), SENDER, ["a@example.org"]) == {}
        server.idle.drop_after_content = True
        with pytest.raises(smtplib.SMTPServerDisconnected):
            transport.send(confirmation(2), SENDER, ["b@example.org"])
        server.idle.drop_after_content = False
        assert transport.send(confirmation(3), SENDER, ["c@example.org"]) == {}
    finally:
        transport.close()
    assert received(server) == ["a@example.org", "b@example.org", "c@example.org"]


def test_a_worker_whose_kept_connection_was_dropped_defers_no_one(
    sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    """Two sends through a real `newsletter worker`; between them the server closes the
    worker's idle kept connection (as its timeout would). Nobody of the second send is
    deferred: every row is sent on its first attempt, each reader gets one copy."""
    readers = [f"r{i}@example.org" for i in range(12)]  # two batches of 10
    first_id = populate(readers)
    with session_scope() as session:
        list_id = session.get(Digest, first_id).list_id  # type: ignore[union-attr]
    server = IdleServer().start()
    app = AppProcesses(send_env(data_dir, server.url, sqlite_db, None), tmp_path)
    try:
        app.start_worker("--concurrency", "1")
        app.run("digest", "send", "--list", "news", "--digest", str(first_id))
        assert wait_status(app, first_id, timeout=60)["sent"] == len(readers)
        assert server.close_connections(say_421=True) >= 1  # the worker's kept one
        with session_scope() as session:
            second = Digest(list_id=list_id, subject="Tomorrow's digest", html=HTML, text=TEXT)
            session.add(second)
            session.flush()
            second_id = second.id
        start = time.perf_counter()
        app.run("digest", "send", "--list", "news", "--digest", str(second_id))
        st = wait_status(app, second_id, timeout=60)
        print(f"second send after the drop: {time.perf_counter() - start:.2f} s")
        assert st["sent"] == len(readers)
    finally:
        app.stop()
        server.stop()
    with session_scope() as session:
        rows = session.execute(
            select(Delivery.status, Delivery.attempts, Delivery.smtp_reply).where(
                Delivery.digest_id == second_id
            )
        ).all()
    assert len(rows) == len(readers)
    assert all(r.status == "sent" and r.attempts == 1 for r in rows), rows
    got = sorted(r for m in server.messages for r in m.rcpt_tos)
    assert got == sorted(readers * 2)  # each reader one copy of each digest
