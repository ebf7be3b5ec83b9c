"""VERP envelope senders: `bounces+<delivery id>-<mac>@BOUNCE_DOMAIN`.

The token is the delivery id plus a truncated HMAC of it under SECRET_KEY, so a bounce
maps back to its delivery without a lookup table the sender could lose, and a forged or
altered address is refused. The MAC is lower-case hex because some mail systems fold
the case of local parts.

This module is the one place that makes and reads these addresses: the sending side
(:func:`verp_address`, and :mod:`newsletter.mail.fastpath` with ``PREFIX`` and
``MAC_CHARS``) and every bounce path (:func:`decode_verp`, :func:`looks_like_verp`,
:func:`verp_token`).

The same domain also receives the ``mailto:`` unsubscribe address of every digest's
List-Unsubscribe header (RFC 2369), ``unsubscribe+<unsubscribe token>@BOUNCE_DOMAIN``
(built by :mod:`newsletter.mail.fastpath`); :func:`unsubscribe_token` reads it. That
token is the itsdangerous token of the unsubscribe link, case-sensitive base64, so it is
taken exactly as it arrives: SMTP keeps the local part's case (RFC 5321 2.4) and the
mail systems readers use (Gmail, Outlook, Yahoo, Apple Mail, Postfix and Exim relays)
pass it on unchanged. A system that folded it to lower case would spoil the signature:
such a mail is refused like a forged one and changes nothing (the reader still has the
one-click link). Only the ``unsubscribe+`` prefix and the domain are matched without case.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Literal

from newsletter.config import Settings

PREFIX = "bounces"
UNSUBSCRIBE_PREFIX = "unsubscribe"
MAC_CHARS = 12  # 48 bits: forging one needs ~2**47 tries against a server that notices.
_SIGNED = re.compile(rf"^(\d{{1,18}})-([0-9a-f]{{{MAC_CHARS}}})$")
# Mail outside the ledger: a confirmation ("c" + subscription id), a test send ("t" +
# digest id), a welcome ("w" + subscription id) or a preference link ("p" + subscriber
# id). Its bounces are counted, never used to suppress anyone (verp_system).
System = Literal["c", "t", "w", "p"]
_SYSTEM = re.compile(rf"^([ctwp])(\d{{1,18}})-([0-9a-f]{{{MAC_CHARS}}})$")
_KINDS: dict[str, System] = {"c": "c", "t": "t", "w": "w", "p": "p"}


def _mac(delivery_id: int, secret: str) -> str:
    msg = f"verp:{delivery_id}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:MAC_CHARS]


def verp_local_part(delivery_id: int, secret: str) -> str:
    return f"{PREFIX}+{delivery_id}-{_mac(delivery_id, secret)}"


def verp_address(delivery_id: int, settings: Settings) -> str:
    """The Return-Path for one delivery."""
    return f"{verp_local_part(delivery_id, settings.secret)}@{settings.bounces_domain}"


def _split(address: str, prefix: str = PREFIX) -> tuple[str | None, str]:
    """(TOKEN, domain) of ``<prefix>+TOKEN@domain``; TOKEN is None without the prefix and
    may be "" (``bounces+@...``). Case is kept: callers decide whether it matters."""
    local, sep, domain = address.strip().strip("<>").strip().rpartition("@")
    wanted = prefix.lower() + "+"
    if not sep or not local.lower().startswith(wanted):
        return None, domain
    return local[len(wanted) :], domain


def verp_token(addresses: Iterable[str], local_prefix: str = PREFIX) -> str | None:
    """The TOKEN of the first ``<local_prefix>+TOKEN@...`` address (any domain), or None.

    Unverified: :func:`decode_verp` is what turns a token into a delivery.
    """
    for address in addresses:
        token, _domain = _split(address, local_prefix)
        if token:
            return token
    return None


def looks_like_verp(address: str, settings: Settings) -> bool:
    """A ``bounces+…@BOUNCE_DOMAIN`` address, whether or not its signature is right."""
    token, domain = _split(address)
    return token is not None and domain.lower() == settings.bounces_domain.lower()


def decode_verp(address: str, settings: Settings) -> int | None:
    """The delivery id a bounce address stands for, or None if it is not one of ours."""
    token, domain = _split(address)
    if token is None or domain.lower() != settings.bounces_domain.lower():
        return None
    found = _SIGNED.match(token.lower())
    if found is None:
        return None
    delivery_id = int(found.group(1))
    if not hmac.compare_digest(found.group(2), _mac(delivery_id, settings.secret)):
        return None
    return delivery_id


def unsubscribe_token(address: str, settings: Settings) -> str | None:
    """The TOKEN of ``unsubscribe+TOKEN@BOUNCE_DOMAIN``, case kept, or None for any other
    address. Unverified: ``subscriptions.tokens.read_unsubscribe_token`` checks it."""
    token, domain = _split(address, UNSUBSCRIBE_PREFIX)
    if token is None or domain.lower() != settings.bounces_domain.lower():
        return None
    return token


def _system_mac(kind: str, ident: int, secret: str) -> str:
    msg = f"verp:{kind}{ident}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:MAC_CHARS]


def system_verp_address(kind: System, ident: int, settings: Settings) -> str:
    """The Return-Path of a confirmation mail (kind "c", the subscription id) or a test
    send (kind "t", the digest id): a bounce of it comes back to us and is recognised."""
    mac = _system_mac(kind, ident, settings.secret)
    return f"{PREFIX}+{kind}{ident}-{mac}@{settings.bounces_domain}"


def decode_system_verp(address: str, settings: Settings) -> tuple[System, int] | None:
    """(kind, id) of a genuine system-mail return path, or None."""
    token, domain = _split(address)
    if token is None or domain.lower() != settings.bounces_domain.lower():
        return None
    found = _SYSTEM.match(token.lower())
    if found is None:
        return None
    kind: System = _KINDS[found.group(1)]
    ident = int(found.group(2))
    if not hmac.compare_digest(found.group(3), _system_mac(kind, ident, settings.secret)):
        return None
    return kind, ident
