"""The SMTP transport: one kept connection, STARTTLS/SSL/auth from SMTP_URL.

Senders sit behind the small `Sender` interface so a provider API could stand in.
SMTP's own framing of message content (dot-stuffing) lives here too: it belongs to the
protocol, not to the message.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import time
from typing import Protocol

from newsletter.config import SmtpConfig


def dot_stuff(lines: bytes) -> bytes:
    """SMTP transparency (RFC 5321 4.5.2) for bytes that start at the start of a line.

    Every line that starts with a dot gets one more; the caller adds the lone-dot end line.
    """
    if lines.startswith(b"."):
        lines = b"." + lines
    return lines.replace(b"\r\n.", b"\r\n..") if b"\r\n." in lines else lines


class Sender(Protocol):
    def send(self, raw: bytes, mail_from: str, rcpt_to: list[str]) -> dict[str, tuple[int, bytes]]:
        """Send one message; return the refused recipients (code, reply) if some were."""

    def close(self) -> None: ...


# A kept connection unused for longer than this is checked (NOOP) before its next
# message: servers close idle connections (Postfix and aiosmtpd after 300 s, some
# relays sooner), and a message must not be the one that finds out.
IDLE_CHECK_SECONDS = 60.0


class _NotSent(smtplib.SMTPServerDisconnected):
    """The connection was found closed before any of the message's content was written."""


class SmtpTransport:
    """Reuses its connection across messages; reconnects once if the server hung up
    before the message's content was written (never after: it may have been accepted)."""

    idle_check_seconds = IDLE_CHECK_SECONDS

    def __init__(self, config: SmtpConfig, timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout
        self._conn: smtplib.SMTP | None = None
        self._used_at = 0.0  # time.monotonic() of the kept connection's last exchange

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        conn: smtplib.SMTP
        if cfg.ssl:
            conn = smtplib.SMTP_SSL(
                cfg.host, cfg.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            conn = smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout)
        conn.ehlo()
        if cfg.starttls:
            conn.starttls(context=ssl.create_default_context())
            conn.ehlo()
        if cfg.username:
            conn.login(cfg.username, cfg.password or "")
        return conn

    @property
    def connection(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._connect()
            self._used_at = time.monotonic()
        return self._conn

    def idle_check(self) -> bool:
        """A kept connection idle for `idle_check_seconds` gets a NOOP (one round trip,
        only then); one the server closed meanwhile is dropped, to be opened afresh.
        Returns whether the connection was kept."""
        conn = self._conn
        if conn is None or time.monotonic() - self._used_at < self.idle_check_seconds:
            return conn is not None
        try:
            alive = conn.noop()[0] == 250
        except (OSError, smtplib.SMTPException):
            alive = False
        if alive:
            self._used_at = time.monotonic()
            return True
        self._forget()
        return False

    def _forget(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def send(self, raw: bytes, mail_from: str, rcpt_to: list[str]) -> dict[str, tuple[int, bytes]]:
        kept = self.idle_check()
        try:
            return self._sendmail(self.connection, raw, mail_from, rcpt_to, kept)
        except _NotSent:
            # The kept connection was closed on the server's side (idle timeout) before
            # this message's content went out, so none of it can have been accepted:
            # one fresh try. A drop after the content stays an error (no second copy).
            self._forget()
            try:
                return self._sendmail(self.connection, raw, mail_from, rcpt_to, False)
            except (OSError, smtplib.SMTPServerDisconnected):
                self._forget()
                raise
        except (OSError, smtplib.SMTPServerDisconnected):
            self._forget()
            raise
        finally:
            self._used_at = time.monotonic()

    @staticmethod
    def _sendmail(
        conn: smtplib.SMTP, raw: bytes, mail_from: str, rcpt_to: list[str], kept: bool
    ) -> dict[str, tuple[int, bytes]]:
        """smtplib's sendmail, told apart at the content: a disconnect (or a 421 to MAIL
        FROM on a kept connection) before it raises _NotSent."""
        try:
            conn.ehlo_or_helo_if_needed()
            opts = [f"SIZE={len(raw)}"] if conn.does_esmtp and conn.has_extn("size") else []
            code, resp = conn.mail(mail_from, opts)
            if code == 421 and kept:
                raise _NotSent(f"{code} {resp!r}")
            if code != 250:
                _give_up(conn, code)
                raise smtplib.SMTPSenderRefused(code, resp, mail_from)
            refused: dict[str, tuple[int, bytes]] = {}
            for rcpt in rcpt_to:
                code, resp = conn.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = (code, resp)
                if code == 421:
                    conn.close()
                    raise smtplib.SMTPRecipientsRefused(refused)
            if len(refused) == len(rcpt_to):
                _give_up(conn, 0)
                raise smtplib.SMTPRecipientsRefused(refused)
            conn.putcmd("data")
            code, resp = conn.getreply()
            if code != 354:
                _give_up(conn, code)
                raise smtplib.SMTPDataError(code, resp)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            if isinstance(exc, _NotSent):
                raise
            raise _NotSent(str(exc)) from exc
        # From here on the message may be accepted: no retry.
        content = re.sub(rb"(?m)^\.", b"..", raw)
        if not content.endswith(b"\r\n"):
            content += b"\r\n"
        conn.send(content + b".\r\n")
        code, resp = conn.getreply()
        if code != 250:
            _give_up(conn, code)
            raise smtplib.SMTPDataError(code, resp)
        return refused

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._conn = None


def _give_up(conn: smtplib.SMTP, code: int) -> None:
    """After a refusal, as smtplib's sendmail: a 421 closes, anything else is RSET."""
    if code == 421:
        conn.close()
    else:
        try:
            conn.rset()
        except (OSError, smtplib.SMTPServerDisconnected):
            pass
