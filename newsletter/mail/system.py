"""System mail (confirmations, test sends, later welcome mails) leaves like a digest does:
DKIM-signed with the configured keys and with a VERP return path of its own, so a bounce
of it comes back, is recognised and counted, and suppresses nobody by mistake."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from typing import TYPE_CHECKING

from newsletter.config import Settings
from newsletter.mail.dkim import keys_from_settings, sign_message
from newsletter.mail.message import message_bytes
from newsletter.mail.verp import System, system_verp_address

if TYPE_CHECKING:
    from newsletter.mail.render import Rendered

AUTO = {"Auto-Submitted": "auto-generated"}  # RFC 3834: no auto-replies to it, please


@dataclass(frozen=True)
class Outgoing:
    """One message ready for SMTP: its bytes, envelope sender and recipient."""

    raw: bytes
    mail_from: str
    rcpt_to: str


def system_mail(
    settings: Settings,
    kind: System,
    ident: int,
    *,
    to: Address,
    rendered: Rendered,
    headers: Mapping[str, str] = AUTO,
) -> Outgoing:
    """The rendered mail to one reader from the configured sender, signed, with the
    return path of its kind and id (mail/verp.py)."""
    raw = message_bytes(
        sender=settings.sender,
        to=to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        headers=headers,
    )
    signed = sign_message(raw, keys_from_settings(settings), int(time.time()))
    return Outgoing(
        raw=signed, mail_from=system_verp_address(kind, ident, settings), rcpt_to=to.addr_spec
    )
