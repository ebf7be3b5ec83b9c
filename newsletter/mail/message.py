"""MIME messages built with the standard library's email package (the reference builder),
and the same message written directly as bytes (:func:`message_bytes`).

Why two: building and serialising an EmailMessage (its header registry, parser and
generator) cost about 1.4 ms per mail, more than half of a confirmation task's CPU, for
a mail whose shape never changes: a few headers and two quoted-printable parts.
:func:`message_bytes` writes those bytes itself, using the email package only where a
header needs folding or RFC 2047 words (through the very policy calls the generator
makes) and its own quoted-printable encoder for the parts, so its output is the
reference's, byte for byte; tests/test_mail_message.py holds it to that.

System mails (confirmations, welcome, preference links, "still want this?") leave
through :func:`message_bytes`. Digests go out through their own fast path
(mail/fastpath.py), which tests/test_send_fastpath.py checks against
:func:`build_message`: the same content, headers and parts.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Mapping
from email import quoprimime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from functools import lru_cache


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


# A header value written as it is: printable ASCII words, single spaces, nothing that
# reads as an RFC 2047 word; with its name, within the policy's 78 characters.
_SIMPLE_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*\Z")
# A display name Address writes bare (no specials to quote) and an address needing none.
_SIMPLE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_SIMPLE_ADDR = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\Z")
_TEXT_PART = b'Content-Type: text/plain; charset="utf-8"\r\n'
_HTML_PART = b'Content-Type: text/html; charset="utf-8"\r\n'
_QP = b"Content-Transfer-Encoding: quoted-printable\r\n"
# The generator's boundary: 15 '=', a random number of sys.maxsize's width, '=='.
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))


def _folded(name: str, value: object) -> bytes:
    """The header line as EmailMessage with the SMTP policy writes it: the same two
    calls setting the header and generating the message make."""
    return SMTP.fold_binary(*SMTP.header_store_parse(name, value))


@lru_cache(maxsize=512)
def _folded_text(name: str, value: str) -> bytes:
    # Subjects, From and the fixed headers repeat from one mail to the next.
    return _folded(name, value)


def _header(name: str, value: str) -> bytes:
    if "=?" not in value and len(name) + 2 + len(value) <= 78 and _SIMPLE_VALUE.match(value):
        return f"{name}: {value}\r\n".encode("ascii")
    return _folded_text(name, value)


def _to_header(to: Address) -> bytes:
    name, addr = to.display_name, to.addr_spec
    if _SIMPLE_ADDR.match(addr) and (not name or ("=?" not in name and _SIMPLE_NAME.match(name))):
        value = f"{name} <{addr}>" if name else addr
        if len(value) <= 74:
            return f"To: {value}\r\n".encode("ascii")
    return _folded("To", to)


def _qp_body(text: str) -> bytes:
    """A text part's payload as set_content(cte="quoted-printable") encodes it and the
    generator writes it: lines joined by LF with one at the end, encoded, then CRLF."""
    lines = text.encode("utf-8").splitlines()
    encoded = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), 78)
    return encoded.replace("\n", "\r\n").encode("ascii")


def message_bytes(
    *,
    sender: Address,
    to: Address,
    subject: str,
    text: str,
    html: str,
    headers: Mapping[str, str] | None = None,
    message_id: str | None = None,
    date: str | None = None,
    boundary: str | None = None,
) -> bytes:
    """``build_message(...).as_bytes()``, written directly (see the module's docstring).
    ``date`` and ``boundary`` are for tests comparing the two."""
    text_body, html_body = _qp_body(text), _qp_body(html)
    if boundary is None:
        while True:  # as the generator does: one that no part contains
            boundary = f"==============={random.randrange(sys.maxsize):0{_BOUNDARY_WIDTH}d}=="
            mark = boundary.encode("ascii")
            if mark not in text_body and mark not in html_body:
                break
    head = [
        _folded_text("From", str(sender)),  # the same for every mail: folded once
        _to_header(to),
        _header("Subject", subject),
        _header("Date", date or formatdate(localtime=False)),
        _header("Message-ID", message_id or make_msgid(domain=sender.domain)),
        b"MIME-Version: 1.0\r\n",
    ]
    head += [_header(name, value) for name, value in (headers or {}).items()]
    dash = f"--{boundary}".encode("ascii")
    return b"".join(
        [
            *head,
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode(),
            dash + b"\r\n",
            _TEXT_PART + _QP + b"\r\n",
            text_body,
            b"\r\n" + dash + b"\r\n",
            _HTML_PART + _QP + b"MIME-Version: 1.0\r\n\r\n",
            html_body,
            b"\r\n" + dash + b"--\r\n",
        ]
    )
