"""One SMTP exchange classified into what the ledger records.

A 5xx to RCPT is the address's fault (hard bounce); a 4xx or a dropped connection is
temporary (deferred, retried with backoff); a server that cannot be reached at all is
an outage of the whole send (paused, resumed when it answers). Nothing in here knows
whether it talks to the built-in catcher, a test sink or a real relay.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar

from newsletter.mail.smtp import SmtpTransport, dot_stuff


class SmtpUnavailable(Exception):
    """The SMTP server refuses connections or cannot be reached."""


@dataclass(frozen=True)
class Attempt:
    status: Literal["sent", "bounced", "deferred", "failed"]
    code: int | None = None
    reply: str | None = None


SENT = Attempt("sent", 250)
T = TypeVar("T")


class Envelope(NamedTuple):
    """MAIL FROM and RCPT TO of one message (a tuple: made once per message)."""

    mail_from: str
    rcpt: str


def _reply(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:1000]


class PooledTransport(SmtpTransport):
    """The kept connection of one worker process, with outcomes instead of exceptions.

    With PIPELINING (RFC 2920) a message costs one round trip: its content goes in one
    write together with the next message's MAIL FROM, RCPT TO and DATA ("primed"), and
    one read returns the content's reply followed by the next envelope's three. The
    next content is only written after the caller has journaled this one's accept, so
    at most one message per connection is ever unrecorded. A primed envelope that is
    not used (pause, cancel, a domain backed off meanwhile) is abandoned by closing the
    connection: a server discards a transaction whose data never ended, whereas a lone
    "." would deliver an empty message.

    A kept connection the server closed while idle (its timeout, typically 5 minutes)
    is reopened at once instead of deferring the message that finds it closed: one
    idle for `idle_check_seconds` (60) is checked with a NOOP (or, primed, simply reopened)
    before use, and one that still turns out closed before this message's content was
    written (MAIL FROM / RCPT TO / DATA, or the primed envelope's replies) is reopened
    and the exchange done again on the fresh one. A drop after the content was written
    stays "deferred": the server may have accepted the message, and sending it again
    at once could deliver it twice.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._primed: tuple[str, str] | None = None
        self._primed_on: smtplib.SMTP | None = None
        self._content_written = False  # of the exchange under way

    def ensure_connected(self) -> None:
        try:
            self.connection  # noqa: B018 - connects on first use
        except (OSError, smtplib.SMTPException) as exc:
            self._conn = None
            raise SmtpUnavailable(f"{self.config.host}:{self.config.port}: {exc}") from None

    def attempt(self, raw: bytes, mail_from: str, rcpt: str) -> Attempt:
        """One message (not yet dot-stuffed) on the kept connection."""
        payload = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
        return self.deliver(dot_stuff(payload) + b".\r\n", mail_from, rcpt)

    def deliver(
        self, wire: bytes, mail_from: str, rcpt: str, then: tuple[str, str] | None = None
    ) -> Attempt:
        """One message whose DATA content is `wire` (dot-stuffed, ending in ".\\r\\n").

        `then` is the (mail_from, rcpt) of the message the caller will deliver next on
        this connection; with PIPELINING its envelope rides along with this content.
        """
        if self._primed is not None and self._primed_on is not self._conn:
            self._primed = self._primed_on = None  # that connection is gone
        if self._conn is not None and time.monotonic() - self._used_at >= self.idle_check_seconds:
            if self._primed is not None:
                # Its 354 may be long answered and the server gone since: the content
                # would find out only after being written. A fresh connection instead.
                self._drop()
            else:
                self.idle_check()
        kept = self._conn is not None
        self.ensure_connected()
        try:
            return self._exchange(wire, mail_from, rcpt, then, kept)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            if not kept or self._content_written:
                return Attempt("deferred", None, _reply(f"connection lost: {exc}"))
        # The kept connection was closed before any of this message was written (the
        # server's idle timeout): nothing of it can have been accepted. Once more, at
        # once, on a fresh connection (SmtpUnavailable if there is none to be had).
        self.ensure_connected()
        try:
            return self._exchange(wire, mail_from, rcpt, then, False)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            return Attempt("deferred", None, _reply(f"connection lost: {exc}"))

    def abandon(self) -> None:
        """Give up a primed envelope whose message will not be sent now."""
        if self._primed is not None and self._primed_on is self._conn:
            self._drop()
        self._primed = self._primed_on = None

    def close(self) -> None:
        self.abandon()
        super().close()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._primed = self._primed_on = None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def _exchange(
        self, wire: bytes, mail_from: str, rcpt: str, then: tuple[str, str] | None, kept: bool
    ) -> Attempt:
        """One message; raises SMTPServerDisconnected/OSError if the connection fails,
        with `_content_written` telling whether that was before or after its content."""
        self._content_written = False
        self._used_at = time.monotonic()
        conn = self.connection
        pipelining = conn.has_extn("pipelining")
        if self._primed is not None and self._primed != (mail_from, rcpt):
            self._drop()  # primed for another message: that transaction must not complete
            conn = self.connection
        if self._primed is not None:
            self._primed = self._primed_on = None  # its replies are read just below
            mail, to, data = conn.getreply(), conn.getreply(), conn.getreply()
        elif pipelining:
            conn.send(_envelope(mail_from, rcpt))
            mail, to, data = conn.getreply(), conn.getreply(), conn.getreply()
        else:
            conn.send(f"MAIL FROM:<{mail_from}>\r\n".encode())
            mail = conn.getreply()
            to = data = (503, b"not sent")
        if mail[0] == 421 and kept:
            # A kept connection the server is closing (Postfix's "421 4.4.2 timeout
            # exceeded"): the same as finding it closed, before any content.
            raise smtplib.SMTPServerDisconnected(_reply(mail[1]))
        if not pipelining and mail[0] == 250:
            conn.send(f"RCPT TO:<{rcpt}>\r\n".encode())
            to = conn.getreply()
            if to[0] in (250, 251):
                data = conn.docmd("DATA")
        if data[0] == 354 and (mail[0] != 250 or to[0] not in (250, 251)):
            conn.send(b".\r\n")  # a server that said 354 anyway gets an empty message
            conn.getreply()
            data = (503, b"not sent")
        if mail[0] != 250:
            self._reset_after_error()
            return Attempt("failed" if mail[0] >= 500 else "deferred", mail[0], _reply(mail[1]))
        if to[0] not in (250, 251):
            self._reset_after_error()
            return Attempt("bounced" if to[0] >= 500 else "deferred", to[0], _reply(to[1]))
        if data[0] != 354:
            self._reset_after_error()
            return _refused(data[0], data[1])
        self._content_written = True  # from here on it may be accepted: no resend
        if then is not None and pipelining:
            # RFC 2920 3.1: message content may be the first "command" of a group.
            conn.send(wire + _envelope(*then))
            self._primed, self._primed_on = then, conn
        else:
            conn.send(wire)
        code, reply = conn.getreply()
        if code == 250:
            return SENT
        return _refused(code, reply)

    def _reset_after_error(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()


class Carrier(Protocol):
    """What a Pipeline needs of a transport (PooledTransport)."""

    def deliver(
        self, wire: bytes, mail_from: str, rcpt: str, then: tuple[str, str] | None = None
    ) -> Attempt: ...

    def abandon(self) -> None: ...


class Pipeline(Generic[T]):
    """A run of messages in order on the kept connection, each priming the next one.

    The batch says what to send (`items`, each one's envelope, and whether the next one
    may be primed at all: a backed-off domain's server must not even be asked RCPT TO);
    the priming is done here. `send(i, wire)` delivers item i, its content carrying the
    envelope of item i + 1 (PooledTransport.deliver), and remembers that envelope so
    that item i + 1 reuses it (a VERP sender is made once per message). The caller
    journals item i's accept before it calls `send(i + 1, …)`, so the order on the wire
    stays "content i, reply, journal append i, content i + 1": one message per
    connection in flight.
    """

    def __init__(
        self,
        transport: Carrier,
        items: Sequence[T],
        envelope: Callable[[T], Envelope],
        may_prime: Callable[[T], bool],
    ) -> None:
        self.transport = transport
        self.items = items
        self.envelope = envelope
        self.may_prime = may_prime
        self._primed: tuple[int, Envelope] | None = None  # (index, envelope) made ahead

    def send(self, index: int, wire: bytes) -> Attempt:
        """Deliver item `index` (content `wire`, dot-stuffed); raises SmtpUnavailable."""
        primed = self._primed
        current = primed[1] if primed and primed[0] == index else self.envelope(self.items[index])
        then: tuple[str, str] | None = None
        self._primed = None
        if index + 1 < len(self.items):
            after = self.items[index + 1]
            if self.may_prime(after):
                upcoming = self.envelope(after)
                self._primed = (index + 1, upcoming)
                then = upcoming
        return self.transport.deliver(wire, current.mail_from, current.rcpt, then)

    def abandon(self) -> None:
        """The next item will not follow now (paused, cancelled, held back): drop its
        primed envelope (PooledTransport.abandon)."""
        self.transport.abandon()

    def close(self) -> None:
        """The run is over: nothing primed may stay open on the kept connection."""
        self.transport.abandon()
        self._primed = None


def _refused(code: int, reply: bytes | str) -> Attempt:
    """A refusal of this recipient's message at DATA or after its content: a 5xx is a
    bounce exactly like a 5xx at RCPT (the bounce policy tells "user unknown" from "our
    content or IP"); a 4xx is temporary."""
    return Attempt("bounced" if code >= 500 else "deferred", code, _reply(reply))


def _envelope(mail_from: str, rcpt: str) -> bytes:
    return f"MAIL FROM:<{mail_from}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode()
