"""One SMTP exchange classified into what the ledger records.

A 5xx to RCPT is the address's fault (hard bounce); a 4xx or a dropped connection is
temporary (deferred, retried with backoff); a server that cannot be reached at all is
an outage of the whole send (paused, resumed when it answers). Nothing in here knows
whether it talks to the built-in catcher, a test sink or a real relay.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

from newsletter.mail.smtp import SmtpTransport


class SmtpUnavailable(Exception):
    """The SMTP server refuses connections or cannot be reached."""


@dataclass(frozen=True)
class Attempt:
    status: str  # sent, bounced, deferred, failed
    code: int | None = None
    reply: str | None = None


SENT = Attempt("sent", 250)


def _reply(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:1000]


class PooledTransport(SmtpTransport):
    """The kept connection of one worker process, with outcomes instead of exceptions."""

    def ensure_connected(self) -> None:
        try:
            self.connection  # noqa: B018 - connects on first use
        except (OSError, smtplib.SMTPException) as exc:
            self._conn = None
            raise SmtpUnavailable(f"{self.config.host}:{self.config.port}: {exc}") from None

    def attempt(self, raw: bytes, mail_from: str, rcpt: str) -> Attempt:
        self.ensure_connected()
        try:
            self.send(raw, mail_from, [rcpt])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return Attempt("bounced" if code >= 500 else "deferred", code, _reply(reply))
        except smtplib.SMTPServerDisconnected as exc:
            self._conn = None
            return Attempt("deferred", None, _reply(f"connection lost: {exc}"))
        except smtplib.SMTPResponseException as exc:
            # MAIL FROM or DATA refused: the message, not the address; not a bounce.
            self._reset_after_error()
            status = "failed" if exc.smtp_code >= 500 else "deferred"
            return Attempt(status, exc.smtp_code, _reply(exc.smtp_error))
        except (OSError, smtplib.SMTPException) as exc:
            self._conn = None
            raise SmtpUnavailable(f"{self.config.host}:{self.config.port}: {exc}") from None
        return SENT

    def _reset_after_error(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (OSError, smtplib.SMTPException):
            self._conn = None
