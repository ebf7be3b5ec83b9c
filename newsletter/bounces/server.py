"""`newsletter bounce-server`: an inbound SMTP server for the bounce domain (aiosmtpd).

Why refuse at RCPT: receiving MTAs send DSNs to the envelope sender, which is always a
VERP address with a signed token. Anything else (a forged or mistyped token, mail to some
other address) is refused before DATA with 550 5.1.1, which costs us nothing and tells a
misconfigured sender at once. Oversized messages get 552 from aiosmtpd's own size check
(SIZE is announced in EHLO). After DATA: 250 when recorded, 550 5.6.0 for a message that
is not a bounce at all, 451 4.3.0 when our side failed (database down) so the sending MTA
keeps the DSN and retries - a bounce is never lost to our own outage. Nothing here can
crash the server: every processing error becomes a logged 451.

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
import logging

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.orm import Session as DbSession

from newsletter.bounces.handling import record_rejection
from newsletter.bounces.inbound import MessageOutcome, handle_message
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


class BounceHandler:
    """aiosmtpd handler: only signed VERP and unsubscribe recipients, act after DATA,
    never raise."""

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
            outcome = await asyncio.to_thread(self.process, raw, bounce_rcpts, tokens)
        except Exception:  # noqa: BLE001 - the server must keep running; the MTA retries
            log.exception("bounce from %s could not be processed", session.peer)
            return "451 4.3.0 Temporary failure processing the message, try again later"
        if outcome is not None and outcome.status == "not-a-bounce" and not tokens:
            await asyncio.to_thread(_count, "not-a-bounce")
            return "550 5.6.0 Message not understood as a bounce or complaint"
        return "250 2.0.0 OK"

    def process(
        self, raw: bytes, rcpt_tos: list[str], unsubscribe_tokens: list[str] | None = None
    ) -> MessageOutcome | None:
        """Unsubscribe for every ``unsubscribe+`` recipient and record the bounce for the
        VERP ones (None when there are none), in one transaction committed on return."""
        with session_scope() as db:
            for token in unsubscribe_tokens or []:
                _unsubscribe(db, self.settings, token)
            if not rcpt_tos:
                return None
            return handle_message(db, self.settings, raw, source=SOURCE, rcpt_to=rcpt_tos)


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
