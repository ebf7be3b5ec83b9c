"""The per-recipient fast path: a digest's MIME is built once, each message is a join.

Why: building and serialising an EmailMessage costs ~3.5 ms for a 40 KB digest and
dkimpy ~8 ms more; joining prepared bytes costs ~0.01 ms. So the digest's two parts are
quoted-printable encoded once, split at the placeholder markers, and a message for one
reader is the constant pieces joined with that reader's values.

Quoted-printable and markers: a soft line break ends the line before every marker and
follows every substituted value, so a value always sits on lines of its own. Encoding
the value alone therefore keeps every line within 76 characters and no marker can be
cut by a soft break. It also makes every piece a run of whole CRLF lines, so DKIM's
relaxed body canonicalisation of the message is the concatenation of the pieces'
canonical forms: the constant ones are canonicalised once per digest (and the hash state
before the first marker is copied, not recomputed), so per recipient the hash runs over
the values and those prepared forms. Values are encoded with no literal spaces or tabs,
so their canonical form is themselves. The signed header fields that are the same for
every reader are canonicalised once too; per recipient only To, Date, Message-ID and
List-Unsubscribe are (`_signed`, held byte for byte to `_build`, the reference).

This is the one way a reader's fields are filled in: sending (sending/batch.py), the
operator's preview (digests/preview.py) and the test send (sending/testsend.py) all
render through DigestTemplate. tests/test_send_fastpath.py checks that the output parses
to the same content as the reference builder (newsletter/mail/message.py) filled by a
plain substitution (tests/reference.py), and that dkimpy verifies it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from binascii import b2a_base64, b2a_qp
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate
from html import escape

from newsletter.config import Settings
from newsletter.digests import fields
from newsletter.engagement.codes import ReaderCodes
from newsletter.mail.dkim import (
    SIGNED_HEADERS,
    DkimKey,
    PreparedSignature,
    relaxed_body_lines,
    relaxed_header,
    signature_header,
)

# SMTP framing lives in mail/smtp.py; kept importable here for older callers.
from newsletter.mail.smtp import dot_stuff as dot_stuff
from newsletter.mail.verp import verp_local_part
from newsletter.subscriptions.tokens import PreferencesSigner, UnsubscribeSigner

MAX_QP = 75  # characters before the soft-break '=' (RFC 2045 allows 76 per line)
_MARKERS = fields.ANY
# Bytes a value may hold as they are (a value of only these is an address or a URL).
_QP_SAFE_BYTES = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:/?&#;,+@!$'()*%-"
)
# A display name formataddr leaves as it is (no specials, no quoting, no RFC 2047).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_HTML_SPECIAL = re.compile(r"[&<>\"']")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_HEX = [f"={b:02X}".encode() for b in range(256)]
_SAFE_BYTES = frozenset(b for b in range(33, 127) if b != ord("="))


def _qp_tokens(line: bytes, *, encode_ws: bool, last_open: bool) -> list[bytes]:
    toks: list[bytes] = []
    n = len(line)
    for i, b in enumerate(line):
        if b in _SAFE_BYTES:
            toks.append(bytes((b,)))
        elif b in (32, 9) and not encode_ws and (i < n - 1 or last_open):
            toks.append(bytes((b,)))
        else:
            toks.append(_HEX[b])
    return toks


def _wrap(toks: list[bytes]) -> list[bytes]:
    """Soft-wrapped lines (each but the last ends with '=')."""
    lines: list[bytes] = []
    cur: list[bytes] = []
    width = 0
    for t in toks:
        if width + len(t) > MAX_QP:
            lines.append(b"".join(cur) + b"=")
            cur, width = [], 0
        cur.append(t)
        width += len(t)
    lines.append(b"".join(cur))
    return lines


def qp_segment(data: bytes, *, open_end: bool) -> bytes:
    """QP of a literal segment; with open_end it ends in a soft break before a marker."""
    hard = data.split(b"\n")
    out: list[bytes] = []
    for idx, line in enumerate(hard):
        last = idx == len(hard) - 1
        if last and open_end and not line:
            break  # the segment ended on a newline: the marker starts a fresh line
        wrapped = _wrap(_qp_tokens(line, encode_ws=False, last_open=last and open_end))
        if last and open_end:
            wrapped[-1] += b"="
        out.extend(wrapped)
    return b"".join(line + b"\r\n" for line in out) if open_end else b"\r\n".join(out)


def qp_value(value: str) -> bytes:
    """QP of one substituted value, on its own soft-broken lines, without literal spaces."""
    raw = value.encode("utf-8")
    if not raw.translate(None, _QP_SAFE_BYTES):  # nothing to encode (addresses, URLs)
        if len(raw) <= MAX_QP:
            return raw + b"=\r\n"
        chunks = [raw[i : i + MAX_QP] for i in range(0, len(raw), MAX_QP)]
    elif len(quoted := b2a_qp(raw, quotetabs=True, istext=False)) <= MAX_QP and (
        b"\n" not in quoted
    ):
        # A short value (a name, in any script) in C; every byte but the safe ones as
        # =XX, as below, so it fits one line.
        return quoted + b"=\r\n"
    else:
        chunks = [
            c.removesuffix(b"=") for c in _wrap(_qp_tokens(raw, encode_ws=True, last_open=True))
        ]
    return b"".join(c + b"=\r\n" for c in chunks)


def to_header(name: str, email: str) -> str:
    """`format_address`, without its cost for the common plain ASCII name."""
    if email.isascii():
        if not name:
            return email
        if _PLAIN_NAME.match(name):
            return f"{name} <{email}>"
    return format_address(name, email)


def format_address(name: str, email: str) -> str:
    """`Name <addr>` with quoting or RFC 2047 as needed, CRLF-folded."""
    name = " ".join(_CONTROL.sub(" ", name or "").split())
    return formataddr((name, email), charset="utf-8").replace("\r\n", "\n").replace("\n", "\r\n")


def encode_subject(subject: str) -> str:
    subject = " ".join(_CONTROL.sub(" ", subject).split())
    if subject.isascii() and len(subject) < 900:
        return subject
    return Header(subject, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def _footer(html: str, footer: str) -> str:
    idx = html.lower().rfind("</body>")
    return html[:idx] + footer + html[idx:] if idx >= 0 else html + footer


def ensure_unsubscribe(text: str, html: str) -> tuple[str, str]:
    """Both parts must show an unsubscribe link; add a footer where a template forgot."""
    marker = fields.UNSUBSCRIBE_URL
    if marker not in text:
        text = text.rstrip("\n") + f"\n\nUnsubscribe: {marker}\n"
    if marker not in html:
        footer = f'<p style="font-size:12px;color:#666666"><a href="{marker}">Unsubscribe</a></p>'
        html = _footer(html, footer)
    return text, html


def ensure_preferences(text: str, html: str) -> tuple[str, str]:
    """Both parts link to the reader's preference centre (every digest does, whatever
    its template or when it was composed); a footer is added where a template forgot."""
    marker = fields.PREFERENCES_URL
    if marker not in text:
        text = text.rstrip("\n") + f"\nManage your subscription: {marker}\n"
    if marker not in html:
        footer = (
            f'<p style="font-size:12px;color:#666666"><a href="{marker}">'
            "Manage your subscription</a></p>"
        )
        html = _footer(html, footer)
    return text, html


def _long_url(url: str, wire: bool) -> bytes:
    """A URL over one QP line: its soft-broken lines, dot-stuffed on the wire."""
    value = qp_value(url)
    return _stuffed(value) if wire else value


def _stuffed(value: bytes) -> bytes:
    """An encoded value as it goes on the wire: dot-stuffed where a line of it starts
    with a dot (each value starts a line: see the module's docstring)."""
    return dot_stuff(value) if value[:1] == b"." or b"\n." in value else value


def _with_holes(pieces: list[bytes]) -> list[bytes]:
    """The constant pieces with an empty slot between each two, for the values."""
    out = [pieces[0]]
    for piece in pieces[1:]:
        out += (b"", piece)
    return out


_URLSAFE = bytes.maketrans(b"+/", b"-_")


class _Tokens:
    """A subscriptions.tokens signer's tokens, the same strings in fewer steps (made for
    every message, twice: unsubscribe and preferences): the keyed BLAKE2b state is made
    once and copied per token instead of keyed again, and the MAC's base64 is one C call
    (tests/test_send_fastpath.py checks both give the same tokens)."""

    def __init__(self, signer: UnsubscribeSigner, prefix: str) -> None:
        self._keyed = hashlib.blake2b(key=signer.key, digest_size=16)
        self._prefix = prefix

    def __call__(self, subscription_id: int) -> str:
        h = self._keyed.copy()
        digits = b"%d" % subscription_id
        h.update(digits)
        mac = b2a_base64(h.digest(), newline=False).translate(_URLSAFE).rstrip(b"=")
        return self._prefix + digits.decode() + "." + mac.decode()


def UnsubscribeTokens(secret: str) -> _Tokens:  # noqa: N802 - was the signer class itself
    """The fast path's unsubscribe tokens: subscriptions.tokens' own, "u2.<id>.<MAC>"."""
    return _Tokens(UnsubscribeSigner(secret), "u2.")


def PreferencesTokens(secret: str) -> _Tokens:  # noqa: N802 - named like its sibling
    """The fast path's preference tokens: subscriptions.tokens' own, "p2.<id>.<MAC>"."""
    return _Tokens(PreferencesSigner(secret), "p2.")


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    email: str
    name: str
    subscription_id: int
    # Subscriber.attributes; read by the sender only for a digest that shows one.
    attributes: Mapping[str, object] | None = None


@dataclass(frozen=True)
class Slot:
    marker: str
    html: bool


class DigestTemplate:
    """One digest prepared for sending: build once per worker, render per recipient."""

    def __init__(
        self,
        *,
        settings: Settings,
        digest_id: int,
        list_slug: str,
        list_name: str,
        subject: str,
        text: str,
        html: str,
        dkim_keys: Sequence[DkimKey] = (),
    ) -> None:
        self.settings = settings
        self.digest_id = digest_id
        self.secret = settings.secret
        self.base_url = settings.base_url
        self.bounce_domain = settings.bounces_domain
        self.keys = tuple(dkim_keys)
        domain = settings.sender_domain
        salt = hmac.new(self.secret.encode(), f"msgid:{digest_id}".encode(), hashlib.sha256)
        # Deterministic per delivery: a resend after a crash carries the same Message-ID,
        # which lets receivers collapse the one possible duplicate.
        self.message_id_prefix = "<"
        self.message_id_suffix = f".{digest_id}.{salt.hexdigest()[:10]}@{domain}>"
        sender = settings.sender
        list_id_name = " ".join(_CONTROL.sub(" ", list_name).split()).replace('"', "")
        self.const_headers: dict[str, bytes] = {
            "From": format_address(sender.display_name, sender.addr_spec).encode(),
            "Subject": encode_subject(subject).encode(),
            "MIME-Version": b"1.0",
            "List-Id": f'"{list_id_name}" <{list_slug}.{domain}>'.encode()
            if list_id_name.isascii()
            else f"<{list_slug}.{domain}>".encode(),
            "List-Unsubscribe-Post": b"List-Unsubscribe=One-Click",
            "Precedence": b"bulk",
        }
        boundary = "==nl_" + secrets.token_hex(12)
        self.const_headers["Content-Type"] = (
            f'multipart/alternative;\r\n boundary="{boundary}"'.encode()
        )
        text, html = ensure_unsubscribe(text.replace("\r\n", "\n"), html.replace("\r\n", "\n"))
        text, html = ensure_preferences(text, html)
        pieces: list[bytes] = []
        slots: list[Slot] = []
        current = b""
        for part, is_html in ((text, False), (html, True)):
            subtype = "html" if is_html else "plain"
            current += (
                f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            ).encode()
            pos = 0
            for found in _MARKERS.finditer(part):
                current += qp_segment(part[pos : found.start()].encode(), open_end=True)
                pieces.append(current)
                slots.append(Slot(found.group(0), is_html))
                current = b""
                pos = found.end()
            current += qp_segment(part[pos:].encode(), open_end=False) + b"\r\n"
        current += f"--{boundary}--\r\n".encode()
        pieces.append(current)
        self.pieces = pieces
        self.slots = slots
        # On the wire every piece starts a line (the body's start, or after a value's
        # soft break), so dot-stuffing each constant piece once per digest is the same
        # as stuffing the whole message; per message only the short values are checked.
        self.wire_pieces = [dot_stuff(p) for p in pieces]
        self._token = UnsubscribeTokens(self.secret)
        self._preferences = PreferencesTokens(self.secret)
        self._reader_codes = ReaderCodes(self.secret)
        # The fast path's plan: which reader value each slot takes (2 × its index in
        # `order`: 0 name, 1 address, 2 unsubscribe URL, 3 preferences URL, 4 reader
        # code, 5… the attributes the digest shows; + 1 when in the HTML part), and the
        # whole message as a list to copy per reader: the constant text with a hole per
        # reader value (To, Date, Message-ID, the List-Unsubscribe URL and token, then
        # the body's).
        attribute_markers = list(
            dict.fromkeys(s.marker for s in slots if s.marker not in fields.ALL)
        )
        order = (*fields.ALL, *attribute_markers)
        self._order = order
        # (name, fallback) of each attribute marker, in `order` from index 5 on.
        self.attributes = [fields.parse_attribute(m) for m in attribute_markers]
        self._plan = [order.index(slot.marker) * 2 + slot.html for slot in slots]
        self._groups = sorted(set(self._plan))  # text (even) before its HTML (odd)
        # Only the name, address and unsubscribe URL: the shortest per-reader path.
        self._basic = all(g < 6 for g in self._groups)
        self._uses = {g >> 1 for g in self._groups}
        # … and the preference centre's URL (every digest but those built elsewhere).
        self._standard = all(g < 8 for g in self._groups)
        self._preferences_prefix = f"{self.base_url}/preferences/"
        # A base URL of plain bytes (the usual "https://host"): the unsubscribe and
        # preference URLs need no escaping nor quoting, so the per-reader loop skips them.
        base = self.base_url.encode()
        self._plain_urls = (
            bool(base)
            and not base.translate(None, _QP_SAFE_BYTES)
            and not (_HTML_SPECIAL.search(self.base_url) or base.startswith(b"."))
        )
        self._value_groups = [g for g in self._groups if g not in (4, 5, 6, 7)]
        self._unsubscribe_prefix = f"{self.base_url}/unsubscribe/"
        self._mid_prefix = self.message_id_prefix.encode()
        self._mid_suffix = self.message_id_suffix.encode()
        c = self.const_headers
        head = [
            b"From: " + c["From"] + b"\r\nTo: ",
            b"",
            b"\r\nSubject: " + c["Subject"] + b"\r\nDate: ",
            b"",
            b"\r\nMessage-ID: ",
            b"",
            b"\r\nMIME-Version: " + c["MIME-Version"]
            + b"\r\nContent-Type: " + c["Content-Type"]
            + b"\r\nList-Id: " + c["List-Id"]
            + b"\r\nList-Unsubscribe: <",
            b"",
            b">,\r\n <mailto:unsubscribe+",
            b"",
            b"@" + self.bounce_domain.encode() + b"?subject=unsubscribe>"
            + b"\r\nList-Unsubscribe-Post: " + c["List-Unsubscribe-Post"]
            + b"\r\nPrecedence: bulk\r\n\r\n",
        ]  # fmt: skip
        self._whole = [*head, *_with_holes(pieces)]
        self._whole_wire = [*head, *_with_holes(self.wire_pieces), b".\r\n"]
        self._positions = [(len(head) + 2 * i + 1, g) for i, g in enumerate(self._plan)]
        self.canon = [relaxed_body_lines(p) for p in pieces]
        self._prefix_hash = hashlib.sha256(self.canon[0])
        self._date_cache: tuple[int, bytes] = (0, b"")
        # The signed headers' relaxed forms: the constant ones once here, per message only
        # To, Date (once a second), Message-ID and List-Unsubscribe (_signed).
        self._signers = [PreparedSignature(k, SIGNED_HEADERS) for k in self.keys]
        self._canon_from = relaxed_header("from", c["From"])
        self._canon_subject = relaxed_header("subject", c["Subject"])
        self._canon_middle = b"".join(
            relaxed_header(n, c[n]) for n in ("MIME-Version", "Content-Type", "List-Id")
        )
        self._canon_post = relaxed_header("list-unsubscribe-post", c["List-Unsubscribe-Post"])
        self._mailto_suffix = b"@" + self.bounce_domain.encode() + b"?subject=unsubscribe>"
        self._canon_date: tuple[bytes, bytes] = (b"", b"")

    # Per recipient -------------------------------------------------------------------

    @property
    def uses_attributes(self) -> bool:
        """Does the digest show an attribute? (Else the sender reads none.)"""
        return bool(self.attributes)

    def unsubscribe_url(self, subscription_id: int) -> str:
        return f"{self.base_url}/unsubscribe/{self._token(subscription_id)}"

    def preferences_url(self, subscription_id: int) -> str:
        return self._preferences_prefix + self._preferences(subscription_id)

    def _raws(self, r: Recipient, url: str) -> list[str]:
        """Every reader value of `order` the digest uses ("" for the others)."""
        uses = self._uses
        raws = [
            r.name or "",
            r.email,
            url,
            self._preferences_prefix + self._preferences(r.subscription_id) if 3 in uses else "",
            self._reader_codes(r.delivery_id) if 4 in uses else "",
        ]
        if self.attributes:
            have = r.attributes or {}
            for name, fallback in self.attributes:
                value = have.get(name)
                if value.__class__ is str and value:
                    raws.append(value)  # the usual case: text
                else:
                    raws.append(fields.attribute_text(value, fallback))
        return raws

    def message_id(self, delivery_id: int) -> str:
        return f"{self.message_id_prefix}{delivery_id}{self.message_id_suffix}"

    def _date(self, now: float) -> bytes:
        second = int(now)
        if self._date_cache[0] != second:
            self._date_cache = (second, formatdate(second, usegmt=True).encode())
        return self._date_cache[1]

    def envelope_sender(self, delivery_id: int) -> str:
        if delivery_id <= 0:
            return f"bounces@{self.bounce_domain}"
        # verp_address would read settings.bounces_domain, which parses the From address
        # each time (~25 µs): the domain is kept from the constructor instead.
        return f"{verp_local_part(delivery_id, self.secret)}@{self.bounce_domain}"

    def render(
        self, r: Recipient, *, now: float | None = None, message_id: str | None = None
    ) -> bytes:
        """The complete message for one recipient, DKIM-signed when keys are configured."""
        if self.keys:
            return self._signed(r, now, message_id, wire=False)
        return self._unsigned(r, now, message_id, wire=False)

    def render_wire(self, r: Recipient, *, now: float | None = None) -> bytes:
        """`render` as SMTP DATA content: dot-stuffed and ending with the lone '.' line."""
        if self.keys:
            return self._signed(r, now, None, wire=True)
        return self._unsigned(r, now, None, wire=True)

    def _unsigned(
        self, r: Recipient, now: float | None, message_id: str | None, *, wire: bool
    ) -> bytes:
        """`_build` without signatures, in the fewest steps (it runs once per reader):
        the same bytes (tests/test_send_fastpath.py compares the two)."""
        return b"".join(self._fill(r, now, message_id, wire=wire))

    def _signed(
        self, r: Recipient, now: float | None, message_id: str | None, *, wire: bool
    ) -> bytes:
        """`_build` with its signatures, from `_fill`'s pieces: the body hash over the
        reader's values and the constants' canonical forms, the constant headers
        canonicalised once per digest. The same bytes as `_build` (RSA PKCS#1 v1.5 and
        Ed25519 signatures are deterministic: tests/test_send_fastpath.py compares)."""
        now = time.time() if now is None else now
        out = self._fill(r, now, message_id, wire=False)
        h = self._prefix_hash.copy()
        canon = self.canon
        for i, (position, _) in enumerate(self._positions, 1):
            h.update(out[position])
            h.update(canon[i])
        body_hash = h.digest()
        date = out[3]
        if self._canon_date[0] != date:
            self._canon_date = (date, relaxed_header("date", date))
        headers = (
            self._canon_from
            + relaxed_header("to", out[1])
            + self._canon_subject
            + self._canon_date[1]
            + relaxed_header("message-id", out[5])
            + self._canon_middle
            + relaxed_header(
                "list-unsubscribe",
                b"<" + out[7] + b">,\r\n <mailto:unsubscribe+" + out[9] + self._mailto_suffix,
            )
            + self._canon_post
        )
        t = int(now)
        signatures = b"".join(s.header(headers, body_hash, t) for s in self._signers)
        if wire:
            # The wire form of the same pieces: dot-stuffed constants, and a value stuffed
            # where it starts a line with a dot (as _fill does with wire=True).
            whole = out
            out = self._whole_wire[:]
            for hole in (1, 3, 5, 7, 9):
                out[hole] = whole[hole]
            for position, _ in self._positions:
                out[position] = _stuffed(whole[position])
        return signatures + b"".join(out)

    def _fill(
        self, r: Recipient, now: float | None, message_id: str | None, *, wire: bool
    ) -> list[bytes]:
        """The message as a list of pieces: the constant text with the reader's values in
        its holes (To, Date, Message-ID, the List-Unsubscribe URL and token, the body's)."""
        token = self._token(r.subscription_id)
        url = self._unsubscribe_prefix + token
        url_bytes = url.encode()
        if self._basic:
            raws: Sequence[str] = (r.name or "", r.email, url)
            enc = [b""] * 6
        elif self._standard:
            prefs = self._preferences_prefix + self._preferences(r.subscription_id)
            raws = (r.name or "", r.email, url, prefs)
            enc = [b""] * 8
        else:
            raws = self._raws(r, url)
            enc = [b""] * (2 * len(raws))
        groups = self._groups
        if self._plain_urls:
            # The URLs are the base URL and a token: nothing to escape or quote, no
            # leading dot; one short line each (else the general way below).
            enc[4] = enc[5] = (
                url_bytes + b"=\r\n" if len(url_bytes) <= MAX_QP else _long_url(url, wire)
            )
            if not self._basic:
                prefs_bytes = raws[3].encode()
                enc[6] = enc[7] = (
                    prefs_bytes + b"=\r\n"
                    if len(prefs_bytes) <= MAX_QP
                    else _long_url(raws[3], wire)
                )
            groups = self._value_groups
        # Each value encoded once: the HTML one is the text one unless escaping changes it.
        for group in groups:
            raw = raws[group >> 1]
            if group & 1:
                if not _HTML_SPECIAL.search(raw) and enc[group - 1]:
                    enc[group] = enc[group - 1]
                    continue
                raw = escape(raw, quote=True)
            value = qp_value(raw)
            if wire and (value[:1] == b"." or b"\n." in value):  # _stuffed, without a call
                value = dot_stuff(value)
            enc[group] = value
        # One list per message: the constant text with a hole per reader value.
        out = self._whole_wire[:] if wire else self._whole[:]
        for position, group in self._positions:
            out[position] = enc[group]
        out[1] = to_header(r.name, r.email).encode()
        out[3] = self._date(time.time() if now is None else now)
        out[5] = (
            message_id.encode()
            if message_id
            else self._mid_prefix + b"%d" % r.delivery_id + self._mid_suffix
        )
        out[7] = url_bytes
        out[9] = token.encode()
        return out

    def _build(
        self, r: Recipient, now: float | None, message_id: str | None, *, wire: bool
    ) -> bytes:
        now = time.time() if now is None else now
        token = self._token(r.subscription_id)
        url = f"{self.base_url}/unsubscribe/{token}"
        values = dict(zip(self._order, self._raws(r, url), strict=False))
        encoded: dict[Slot, bytes] = {}
        body_parts = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            value = encoded.get(slot)
            if value is None:
                raw = values[slot.marker]
                value = encoded[slot] = qp_value(escape(raw, quote=True) if slot.html else raw)
            body_parts.append(value)
            body_parts.append(piece)
        mailto = f"unsubscribe+{token}@{self.bounce_domain}"
        c = self.const_headers
        headers: list[tuple[str, bytes]] = [
            ("From", c["From"]),
            ("To", format_address(r.name, r.email).encode()),
            ("Subject", c["Subject"]),
            ("Date", self._date(now)),
            ("Message-ID", (message_id or self.message_id(r.delivery_id)).encode()),
            ("MIME-Version", c["MIME-Version"]),
            ("Content-Type", c["Content-Type"]),
            ("List-Id", c["List-Id"]),
            ("List-Unsubscribe", f"<{url}>,\r\n <mailto:{mailto}?subject=unsubscribe>".encode()),
            ("List-Unsubscribe-Post", c["List-Unsubscribe-Post"]),
        ]
        out = [self._signatures(headers, body_parts, int(now))] if self.keys else []
        out.extend(n.encode() + b": " + v + b"\r\n" for n, v in headers)
        out.append(b"Precedence: bulk\r\n\r\n")
        if not wire:
            out.extend(body_parts)
            return b"".join(out)
        # Header lines never start with '.' (continuations start with white space).
        wp = self.wire_pieces
        out.append(wp[0])
        for i in range(1, len(body_parts), 2):
            value = body_parts[i]
            out.append(dot_stuff(value) if b"." in value else value)
            out.append(wp[(i + 1) // 2])
        out.append(b".\r\n")
        return b"".join(out)

    def _signatures(
        self, headers: list[tuple[str, bytes]], body_parts: list[bytes], t: int
    ) -> bytes:
        h = self._prefix_hash.copy()
        # body_parts alternates constant piece, value, constant piece, ...; values need no
        # canonicalisation (no spaces, whole lines), constants use their precomputed form.
        for i in range(1, len(body_parts), 2):
            h.update(body_parts[i])
            h.update(self.canon[(i + 1) // 2])
        body_hash = h.digest()
        return b"".join(signature_header(k, headers, body_hash, t) for k in self.keys)
