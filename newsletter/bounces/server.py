"""`newsletter bounce-server`: an inbound SMTP server for the bounce domain (aiosmtpd).

Why refuse at RCPT: receiving MTAs send DSNs to the envelope sender, which is always a
VERP address with a signed token. Anything else (a forged or mistyped token, mail to some
other address) is refused before DATA with 550 5.1.1, which costs us nothing and tells a
misconfigured sender at once. Oversized messages get 552 from aiosmtpd's own size check
(SIZE is announced in EHLO). After DATA: 250 when recorded, 550 5.6.0 for a message that
is not a bounce at all, 451 4.3.0 when our side failed (database down) so the sending MTA
keeps the DSN and retries - a bounce is never lost to our own outage. Nothing here can
crash the server: every processing error becomes a logged 451.

Storing: sessions parse their message beside the event loop, then hand it to one writer
thread that commits whatever arrived meanwhile in one transaction (:class:`GroupWriter`);
each session's 250 waits for that commit, so a 250 still means "stored".

The bounce domain is also where the ``mailto:`` of every digest's List-Unsubscribe header
points (``unsubscribe+<unsubscribe token>@BOUNCE_DOMAIN``, RFC 2369; see
:mod:`newsletter.mail.verp` on the token's case). A mail to it unsubscribes that reader
from that list, whatever its subject or body says (RFC 8058 spirit: the address is the
request). The token is checked at RCPT like a VERP address: a forged, altered or
case-folded one gets 550 5.1.1 and is counted (``forged-unsubscribe-token``). After DATA
the unsubscribe is committed before the 250; a database failure is a 451 and the
sender's MTA retries (unsubscribing twice changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import queue
import signal
import socket
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NoReturn

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from newsletter.bounces.handling import record_rejection
from newsletter.bounces.inbound import MessageOutcome
from newsletter.bounces.ingest import Arrived, record_group
from newsletter.bounces.parse import analyse
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.mail.verp import (
    decode_system_verp,
    decode_verp,
    looks_like_verp,
    unsubscribe_token,
)
from newsletter.subscriptions.consent import unsubscribe
from newsletter.subscriptions.tokens import TokenInvalid, read_unsubscribe_token

log = logging.getLogger(__name__)
SOURCE = "smtp"
MAX_RECIPIENTS = 20  # one DSN goes to one envelope sender; more is abuse
MAX_GROUP = 256  # messages per transaction: bounds the time one commit holds its sessions


@dataclass
class _Job:
    """One message waiting for the writer: ``arrived`` is None when it carries nothing to
    record (unsubscribe mail only, or a bounce recipient but no bounce in it)."""

    arrived: Arrived | None
    tokens: list[str]
    done: Future[MessageOutcome | None] = field(default_factory=Future)


class GroupWriter:
    """The one thread that writes: it takes every message that arrived while it was busy
    (up to ``max_group``), stores them in one transaction and only after the commit lets
    their sessions answer.

    Why a group: each DSN is committed before its 250, and a commit per message (one WAL
    flush, a dozen round trips) held the server to a couple of hundred DSNs a second.
    One commit for everything that queued up meanwhile costs one flush per group, and the
    groups grow by themselves with the load (no timer adds latency to a lone DSN).

    Why nothing is half-written: a group is one transaction. When it fails, every message
    in it is written again alone, so one message that cannot be stored (a bug, bad data)
    costs only its own 451 and its sender's retry; when the database is down each of those
    fails too and every session answers 451.
    """

    def __init__(self, settings: Settings, max_group: int = MAX_GROUP) -> None:
        self.settings = settings
        self.max_group = max_group
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bounce-writer", daemon=True)
        self.groups = 0  # commits attempted, for tests and the log

    def start(self) -> None:
        self._thread.start()

    def warm_up(self) -> None:
        """Open the database connection (and import its driver) before the first DSN
        arrives, not while the first group's sessions wait. A database down now is only
        logged: each message then answers 451 until it is back."""
        try:
            with session_scope() as db:
                db.execute(select(1))
        except Exception:  # noqa: BLE001 - the server starts anyway; messages get 451
            log.warning("bounce-server: database unreachable at start", exc_info=True)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(30)

    def submit(self, arrived: Arrived | None, tokens: list[str]) -> Future[MessageOutcome | None]:
        job = _Job(arrived, tokens)
        self._queue.put(job)
        return job.done

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            group = [job]
            stopping = False
            while len(group) < self.max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            self._write(group)
            if stopping:
                return

    def _write(self, group: list[_Job]) -> None:
        # A session that went away (client timeout, server stopping) cancelled its wait:
        # it was told nothing, so its MTA sends again and the message is not written now.
        group = [job for job in group if job.done.set_running_or_notify_cancel()]
        if group:
            self._write_taken(group)

    def _write_taken(self, group: list[_Job]) -> None:
        try:
            outcomes = self._commit(group)
        except Exception:  # noqa: BLE001 - rolled back; retried alone below
            if len(group) > 1:
                log.warning("a group of %d bounces failed; writing each alone", len(group))
                for job in group:
                    self._write_taken([job])
                return
            log.exception("a bounce could not be stored")
            group[0].done.set_exception(_StoreFailed())
            return
        for job, outcome in zip(group, outcomes, strict=True):
            job.done.set_result(outcome)

    def _commit(self, group: list[_Job]) -> list[MessageOutcome | None]:
        """One transaction for the group, committed on return. Unsubscribe mails go
        first: unsubscribing and bounce handling commute (both only ever end
        subscriptions), so the order across messages does not change the result."""
        self.groups += 1
        arrived = [job.arrived for job in group if job.arrived is not None]
        with session_scope() as db:
            for job in group:
                for token in job.tokens:
                    _unsubscribe(db, self.settings, token)
            recorded = iter(record_group(db, self.settings, arrived, source=SOURCE))
        return [next(recorded) if job.arrived is not None else None for job in group]


class _StoreFailed(Exception):
    """The message's transaction failed; the session answers 451 and the MTA retries."""


class BounceHandler:
    """aiosmtpd handler: only signed VERP and unsubscribe recipients, act after DATA,
    never raise. Parsing runs in a thread beside the event loop; storing is the writer's."""

    def __init__(self, settings: Settings, writer: GroupWriter) -> None:
        self.settings = settings
        self.writer = writer

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        token = unsubscribe_token(address, self.settings)
        if token is not None:
            if not _genuine_unsubscribe(token, self.settings):
                await asyncio.to_thread(_count, "forged-unsubscribe-token")
                return f"550 5.1.1 <{address}>: no such unsubscribe address"
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        if (
            decode_verp(address, self.settings) is None
            and decode_system_verp(address, self.settings) is None
        ):
            why = "forged-token" if looks_like_verp(address, self.settings) else "unknown-address"
            await asyncio.to_thread(_count, why)
            return f"550 5.1.1 <{address}>: no such bounce address"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        tokens: list[str] = []
        bounce_rcpts: list[str] = []
        for address in envelope.rcpt_tos:
            token = unsubscribe_token(address, self.settings)
            if token is None:
                bounce_rcpts.append(address)
            else:
                tokens.append(token)
        try:
            results = await asyncio.to_thread(analyse, raw, bounce_rcpts) if bounce_rcpts else []
            if bounce_rcpts and not results and not tokens:
                await asyncio.to_thread(_count, "not-a-bounce")
                return "550 5.6.0 Message not understood as a bounce or complaint"
            arrived = Arrived(raw, bounce_rcpts, results) if results else None
            await asyncio.wrap_future(self.writer.submit(arrived, tokens))
        except Exception as exc:  # noqa: BLE001 - the server must keep running; the MTA retries
            if not isinstance(exc, _StoreFailed):
                log.exception("bounce from %s could not be processed", session.peer)
            return "451 4.3.0 Temporary failure processing the message, try again later"
        return "250 2.0.0 OK"


def _genuine_unsubscribe(token: str, settings: Settings) -> bool:
    try:
        read_unsubscribe_token(settings.secret, token)
    except TokenInvalid:
        return False
    return True


def _unsubscribe(db: DbSession, settings: Settings, token: str) -> None:
    try:
        sub = unsubscribe(db, settings, token)
    except TokenInvalid:  # genuine, but the subscription is gone (erased): nothing to do
        log.info("unsubscribe mail for a subscription that no longer exists")
        return
    db.flush()
    log.info("subscription %s unsubscribed by mail", sub.id)


def _count(reason: str) -> None:
    try:
        with session_scope() as db:
            record_rejection(db, SOURCE, reason)
    except Exception:  # noqa: BLE001 - counting must not turn a refusal into a crash
        log.exception("could not count a refused bounce")


class _LenientSMTP(SMTP):
    """Accepts lines longer than RFC 5321's 1000 octets: real DSNs from GMX or Amazon SES
    carry such lines, and a refused DSN is a lost bounce. The size limit still bounds
    memory."""

    line_length_limit = 64 * 1024


class _Controller(Controller):
    """Runs the SMTP sessions and, beside them, the writer that stores their messages.
    With ``sock`` it serves that listening socket instead of binding host:port itself."""

    def __init__(
        self, handler: BounceHandler, sock: socket.socket | None = None, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self.writer = handler.writer
        self._sock = sock

    def factory(self) -> SMTP:
        return _LenientSMTP(self.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Any:
        if self._sock is None:
            return super()._create_server()
        return self.loop.create_server(self._factory_invoker, sock=self._sock)

    def _trigger_server(self) -> None:
        # aiosmtpd checks its factory by connecting to the port; with several processes on
        # one port that connection may reach another process, so build one directly.
        if self._sock is None:
            super()._trigger_server()
        else:
            self.loop.call_soon_threadsafe(self._factory_invoker)

    def start(self) -> None:
        self.writer.warm_up()
        super().start()  # raises when the port is taken: then no writer is left running
        self.writer.start()

    def stop(self, no_assert: bool = False) -> None:
        super().stop(no_assert)
        self.writer.stop()


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on host:port, one per server process. With more than
    one, SO_REUSEPORT makes the kernel spread new connections across them; all are bound
    before any process starts, so no early connection piles onto the first one."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(512)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


def start_bounce_server(
    settings: Settings, host: str, port: int, sock: socket.socket | None = None
) -> Controller:
    """Start the server in a background thread; ``stop()`` the returned controller.
    ``sock``: a socket from :func:`listening_sockets` to serve instead of binding."""
    controller = _Controller(
        BounceHandler(settings, GroupWriter(settings)),
        sock=sock,
        hostname=host,
        port=port,
        data_size_limit=settings.bounce_max_bytes,
        server_hostname=settings.bounces_domain,
        ident="newsletter bounce-server",
    )
    controller.start()
    return controller


def serve(settings: Settings, socks: list[socket.socket]) -> int:
    """Serve ``socks`` (from :func:`listening_sockets`) until SIGTERM or SIGINT: one
    process per socket, this one the parent when there are several. Returns the exit
    status: 0 on a stop asked for, 1 when a server process ended by itself (the others
    are stopped too, so the service manager restarts a whole server).

    Why processes: one Python process is CPU-bound on parsing and SMTP at a few hundred
    DSNs a second, whatever the database does. Each process has its own writer, so
    groups commit side by side; they are each one transaction, so a lock conflict
    between two of them only retries the loser message by message."""
    if len(socks) == 1:
        return _serve_one(settings, socks[0])
    children: list[int] = []
    for sock in socks:
        pid = os.fork()
        if pid == 0:
            for other in socks:
                if other is not sock:
                    other.close()
            _child(settings, sock)
        children.append(pid)
    for sock in socks:
        sock.close()  # a child that dies takes its socket along; the kernel spreads anew
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    pid, _ = os.wait()
    children.remove(pid)
    if not stopping.is_set():
        log.error("bounce-server process %d ended by itself; stopping the others", pid)
        status = 1
        stop(signal.SIGTERM, None)
    for pid in children:
        os.waitpid(pid, 0)
    return status


def _child(settings: Settings, sock: socket.socket) -> NoReturn:
    """A forked server process: it never returns into the command's code."""
    status = 1
    try:
        _die_with_parent()
        status = _serve_one(settings, sock)
    except BaseException:  # noqa: BLE001 - logged; the parent sees the status
        log.exception("bounce-server process failed")
    finally:
        logging.shutdown()
        os._exit(status)


def _serve_one(settings: Settings, sock: socket.socket) -> int:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    host, port = sock.getsockname()[:2]
    controller = start_bounce_server(settings, host, port, sock=sock)
    while not stopping.wait(1):
        pass
    controller.stop()
    return 0


def _die_with_parent() -> None:
    """A server process stops when its parent is killed (even SIGKILL), so none keeps the
    port after the command is gone (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl
        os._exit(0)
