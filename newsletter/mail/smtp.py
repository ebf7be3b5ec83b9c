"""The SMTP transport: one kept connection, STARTTLS/SSL/auth from SMTP_URL.

Senders sit behind the small `Sender` interface so a provider API could stand in.
SMTP's own framing of message content (dot-stuffing) lives here too: it belongs to the
protocol, not to the message.
"""

from __future__ import annotations

import smtplib
import ssl
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


class SmtpTransport:
    """Reuses its connection across messages; reconnects once if the server hung up."""

    def __init__(self, config: SmtpConfig, timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout
        self._conn: smtplib.SMTP | None = None

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
        return self._conn

    def send(self, raw: bytes, mail_from: str, rcpt_to: list[str]) -> dict[str, tuple[int, bytes]]:
        try:
            return self.connection.sendmail(mail_from, rcpt_to, raw)
        except smtplib.SMTPServerDisconnected:
            # A kept connection may have timed out on the server's side: one fresh try.
            self._conn = None
            return self.connection.sendmail(mail_from, rcpt_to, raw)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._conn = None
