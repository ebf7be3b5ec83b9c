"""`newsletter bounce-server`: an inbound SMTP server for the bounce domain (aiosmtpd).

Why refuse at RCPT: receiving MTAs send DSNs to the envelope sender, which is always a
VERP address with a signed token. Anything else (a forged or mistyped token, mail to some
other address) is refused before DATA with 550 5.1.1, which costs us nothing and tells a
misconfigured sender at once. Oversized messages get 552 from aiosmtpd's own size check
(SIZE is announced in EHLO). After DATA: 250 when recorded, 550 5.6.0 for a message that
is not a bounce at all, 451 4.3.0 when our side failed (database down) so the sending MTA
keeps the DSN and retries - a bounce is never lost to our own outage. Nothing here can
crash the server: every processing error becomes a logged 451.
"""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.bounces.handling import record_rejection
from newsletter.bounces.inbound import MessageOutcome, handle_message
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.mail.verp import decode_verp, looks_like_verp

log = logging.getLogger(__name__)
SOURCE = "smtp"
MAX_RECIPIENTS = 20  # one DSN goes to one envelope sender; more is abuse


class BounceHandler:
    """aiosmtpd handler: only signed VERP recipients, parse after DATA, never raise."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

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
        if decode_verp(address, self.settings) is None:
            why = "forged-token" if looks_like_verp(address, self.settings) else "unknown-address"
            await asyncio.to_thread(_count, why)
            return f"550 5.1.1 <{address}>: no such bounce address"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            outcome = await asyncio.to_thread(self.process, raw, list(envelope.rcpt_tos))
        except Exception:  # noqa: BLE001 - the server must keep running; the MTA retries
            log.exception("bounce from %s could not be processed", session.peer)
            return "451 4.3.0 Temporary failure processing the message, try again later"
        if outcome.status == "not-a-bounce":
            await asyncio.to_thread(_count, "not-a-bounce")
            return "550 5.6.0 Message not understood as a bounce or complaint"
        return "250 2.0.0 OK"

    def process(self, raw: bytes, rcpt_tos: list[str]) -> MessageOutcome:
        with session_scope() as db:
            return handle_message(db, self.settings, raw, source=SOURCE, rcpt_to=rcpt_tos)


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
    def factory(self) -> SMTP:
        return _LenientSMTP(self.handler, **self.SMTP_kwargs)


def start_bounce_server(settings: Settings, host: str, port: int) -> Controller:
    """Start the server in a background thread; ``stop()`` the returned controller."""
    controller = _Controller(
        BounceHandler(settings),
        hostname=host,
        port=port,
        data_size_limit=settings.bounce_max_bytes,
        server_hostname=settings.bounces_domain,
        ident="newsletter bounce-server",
    )
    controller.start()
    return controller
