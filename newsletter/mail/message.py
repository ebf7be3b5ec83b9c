"""MIME messages built with the standard library's email package (the reference builder).

Used as it is for the few one-off mails (subscription confirmations). Digests go out
through the fast path (mail/fastpath.py), which tests/test_send_fastpath.py checks
against this builder: the same content, headers and parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid


def address(email: str, name: str = "") -> Address:
    """An Address whose display name is encoded per RFC 2047 when it is not ASCII."""
    return Address(display_name=name, addr_spec=email)


def build_message(
    *,
    sender: Address,
    to: Address,
    subject: str,
    text: str,
    html: str,
    headers: Mapping[str, str] | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """multipart/alternative with text first and HTML last, as clients prefer the last part."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id or make_msgid(domain=sender.domain)
    msg["MIME-Version"] = "1.0"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg
