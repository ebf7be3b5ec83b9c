"""System mail (confirmations, test sends, later welcome mails) leaves like a digest does:
DKIM-signed with the configured keys and with a VERP return path of its own, so a bounce
of it comes back, is recognised and counted, and suppresses nobody by mistake."""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.message import EmailMessage

from newsletter.config import Settings
from newsletter.mail.dkim import keys_from_settings, sign_message
from newsletter.mail.verp import System, system_verp_address


@dataclass(frozen=True)
class Outgoing:
    """One message ready for SMTP: its bytes, envelope sender and recipient."""

    raw: bytes
    mail_from: str
    rcpt_to: str


def prepare(message: EmailMessage, settings: Settings, kind: System, ident: int) -> Outgoing:
    to = message["To"].addresses[0].addr_spec
    raw = sign_message(message.as_bytes(), keys_from_settings(settings), int(time.time()))
    return Outgoing(raw=raw, mail_from=system_verp_address(kind, ident, settings), rcpt_to=to)
