"""One SMTP connection on asyncio streams, with PooledTransport.deliver's semantics.

Many of these share one event loop (connections.ConnectionSet), so a worker process
keeps dozens of messages in flight. The protocol is the one transport.PooledTransport
speaks, read there for the why: a message's content goes in one write with the next
message's envelope (primed); a primed envelope not used is abandoned by closing; a kept
connection idle for `idle_check_seconds` is checked (NOOP, or reopened if primed); one
found closed (or answering 421) before this message's content was written is reopened
and the exchange done again; after the content it is "deferred", never resent.

Written on asyncio streams rather than aiosmtplib: its public API sends a whole message
per call (MAIL, RCPT, DATA, content, each awaited), so it cannot write the content and
the next envelope in one write and read their four replies, which is what makes one
round trip per message. Connect, STARTTLS, EHLO and AUTH (PLAIN, LOGIN) are short here.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from collections.abc import Callable

from newsletter.config import SmtpConfig
from newsletter.mail.smtp import IDLE_CHECK_SECONDS
from newsletter.sending.transport import SENT, Attempt, SmtpUnavailable, _envelope, _refused, _reply

Reply = tuple[int, bytes]
_FQDN: list[str] = []


class RelayRefused(SmtpUnavailable):
    """The relay answered the connection with 421 (too many connections, busy)."""


class _Lost(Exception):
    """The connection closed (or timed out) under an exchange."""


def _local_name() -> str:
    if not _FQDN:
        _FQDN.append(socket.getfqdn())
    return _FQDN[0]


class AsyncConnection:
    def __init__(
        self,
        config: SmtpConfig,
        timeout: float = 30.0,
        idle_check_seconds: float = IDLE_CHECK_SECONDS,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.idle_check_seconds = idle_check_seconds
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._extensions: set[str] = set()
        self._auth: set[str] = set()
        self._used_at = 0.0
        self._primed: tuple[str, str] | None = None
        self._content_written = False

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    # -- opening ------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (TLS, EHLO, STARTTLS, AUTH as SMTP_URL says); SmtpUnavailable if the
        server cannot be reached, RelayRefused if it greets with 421."""
        if self._writer is not None:
            return
        cfg = self.config
        try:
            context = ssl.create_default_context() if cfg.ssl else None
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(cfg.host, cfg.port, ssl=context), self.timeout
            )
            greeting = await self._read()
            if greeting[0] != 220:
                self._drop()
                kind = RelayRefused if greeting[0] == 421 else SmtpUnavailable
                raise kind(f"{cfg.host}:{cfg.port}: {greeting[0]} {_reply(greeting[1])}")
            await self._ehlo()
            if cfg.starttls:
                if (await self._command(b"STARTTLS\r\n"))[0] != 220:
                    raise _Lost("STARTTLS refused")
                assert self._writer is not None
                await self._writer.start_tls(ssl.create_default_context())
                await self._ehlo()
            if cfg.username:
                await self._login(cfg.username, cfg.password or "")
        except SmtpUnavailable:
            raise
        except (OSError, _Lost, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            self._drop()
            raise SmtpUnavailable(f"{cfg.host}:{cfg.port}: {exc}") from None
        self._used_at = time.monotonic()

    async def _ehlo(self) -> None:
        code, text = await self._command(f"EHLO {_local_name()}\r\n".encode())
        if code != 250:
            raise _Lost(f"EHLO refused: {code} {_reply(text)}")
        lines = text.decode("ascii", "replace").upper().split("\n")[1:]
        self._extensions = {line.split(" ", 1)[0].strip() for line in lines if line.strip()}
        self._auth = set()
        for line in lines:
            if line.startswith("AUTH"):
                self._auth.update(line[5:].split())

    async def _login(self, user: str, password: str) -> None:
        if "PLAIN" in self._auth or not self._auth:
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            code, text = await self._command(f"AUTH PLAIN {token}\r\n".encode())
        else:
            await self._command(b"AUTH LOGIN\r\n")
            await self._command(base64.b64encode(user.encode()) + b"\r\n")
            code, text = await self._command(base64.b64encode(password.encode()) + b"\r\n")
        if code != 235:
            raise SmtpUnavailable(f"authentication failed: {code} {_reply(text)}")

    # -- one message ---------------------------------------------------------------

    async def deliver(
        self,
        wire: bytes,
        mail_from: str,
        rcpt: str,
        then: tuple[str, str] | None = None,
        ahead: Callable[[], None] | None = None,
    ) -> Attempt:
        """One message whose DATA content is `wire` (dot-stuffed, ending in ".\\r\\n"),
        `then` the envelope primed with it; raises SmtpUnavailable.

        `ahead` (the caller's work for its next message) is called once this content is
        on the wire and the other connections woken with this one have written theirs,
        so that work overlaps this reply's round trip instead of following it."""
        if self._writer is not None and time.monotonic() - self._used_at >= self.idle_check_seconds:
            if self._primed is not None:
                self._drop()
            else:
                await self._idle_check()
        kept = self._writer is not None
        await self.open()
        try:
            return await self._exchange(wire, mail_from, rcpt, then, kept, ahead)
        except (_Lost, OSError, asyncio.IncompleteReadError) as exc:
            self._drop()
            if not kept or self._content_written:
                return Attempt("deferred", None, _reply(f"connection lost: {exc}"))
        await self.open()  # closed before any of it was written: once more, fresh
        try:
            return await self._exchange(wire, mail_from, rcpt, then, False, ahead)
        except (_Lost, OSError, asyncio.IncompleteReadError) as exc:
            self._drop()
            return Attempt("deferred", None, _reply(f"connection lost: {exc}"))

    def abandon(self) -> None:
        """Give up a primed envelope whose message will not be sent now."""
        if self._primed is not None:
            self._drop()

    def discard(self) -> None:
        """Close at once (an exchange was interrupted: its state is unknown)."""
        self._drop()

    async def close(self) -> None:
        self.abandon()
        if self._writer is not None:
            try:
                self._writer.write(b"QUIT\r\n")
                await asyncio.wait_for(self._read(), 2.0)
            except (OSError, _Lost, asyncio.IncompleteReadError):
                pass
            self._drop()

    async def _idle_check(self) -> None:
        try:
            alive = (await self._command(b"NOOP\r\n"))[0] == 250
        except (_Lost, OSError, asyncio.IncompleteReadError):
            alive = False
        if alive:
            self._used_at = time.monotonic()
        else:
            self._drop()

    async def _exchange(
        self,
        wire: bytes,
        mail_from: str,
        rcpt: str,
        then: tuple[str, str] | None,
        kept: bool,
        ahead: Callable[[], None] | None = None,
    ) -> Attempt:
        self._content_written = False
        self._used_at = time.monotonic()
        pipelining = "PIPELINING" in self._extensions
        if self._primed is not None and self._primed != (mail_from, rcpt):
            self._drop()  # primed for another message: that transaction must not complete
            await self.open()
        if self._primed is not None:
            self._primed = None  # its replies are read just below
            mail, to, data = await self._read(), await self._read(), await self._read()
        elif pipelining:
            self._write(_envelope(mail_from, rcpt))
            mail, to, data = await self._read(), await self._read(), await self._read()
        else:
            mail = await self._command(f"MAIL FROM:<{mail_from}>\r\n".encode())
            to = data = (503, b"not sent")
        if mail[0] == 421 and kept:
            raise _Lost(_reply(mail[1]))  # a kept connection the server is closing
        if not pipelining and mail[0] == 250:
            to = await self._command(f"RCPT TO:<{rcpt}>\r\n".encode())
            if to[0] in (250, 251):
                data = await self._command(b"DATA\r\n")
        if data[0] == 354 and (mail[0] != 250 or to[0] not in (250, 251)):
            await self._command(b".\r\n")  # a server that said 354 anyway: empty message
            data = (503, b"not sent")
        if mail[0] != 250:
            await self._reset()
            return Attempt("failed" if mail[0] >= 500 else "deferred", mail[0], _reply(mail[1]))
        if to[0] not in (250, 251):
            await self._reset()
            return Attempt("bounced" if to[0] >= 500 else "deferred", to[0], _reply(to[1]))
        if data[0] != 354:
            await self._reset()
            return _refused(data[0], data[1])
        self._content_written = True  # from here on it may be accepted: no resend
        if then is not None and pipelining:
            self._write(wire + _envelope(*then))
            self._primed = then
        else:
            self._write(wire)
        if ahead is not None:
            # The connections woken together each do their CPU work between two writes
            # otherwise: the lanes move in lock-step, a cycle being the round trip plus
            # all of their work. Yielding first lets the others write; the work then
            # runs while the replies travel.
            await asyncio.sleep(0)
            ahead()
        code, reply = await self._read()
        if code == 250:
            return SENT
        return _refused(code, reply)

    async def _reset(self) -> None:
        try:
            if self._writer is not None:
                await self._command(b"RSET\r\n")
        except (_Lost, OSError, asyncio.IncompleteReadError):
            self._drop()

    # -- the wire ------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise _Lost("connection closed")
        self._writer.write(data)

    async def _command(self, line: bytes) -> Reply:
        self._write(line)
        return await self._read()

    async def _read(self) -> Reply:
        """One reply, all its lines (RFC 5321 4.2.1); the text lines joined by \\n."""
        if self._reader is None or self._writer is None:
            raise _Lost("connection closed")
        if self._writer.transport.get_write_buffer_size():
            await asyncio.wait_for(self._writer.drain(), self.timeout)
        texts = []
        while True:
            line = await asyncio.wait_for(self._reader.readline(), self.timeout)
            if not line.endswith(b"\n"):
                raise _Lost("connection closed by the server")
            try:
                code = int(line[:3])
            except ValueError:
                raise _Lost(f"not an SMTP reply: {line[:80]!r}") from None
            texts.append(line[4:].rstrip(b"\r\n"))
            if line[3:4] != b"-":
                return code, b"\n".join(texts)

    def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._primed = None
        if writer is not None:
            writer.close()
