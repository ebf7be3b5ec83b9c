"""A whole bounce message in, events out: shared by the bounce-server, mailbox and ingest.

The message is parsed (pure, :func:`newsletter.bounces.parse.analyse`), the delivery is
found from the VERP address it was sent to, and each recipient's result goes through
:func:`newsletter.bounces.handling.record_bounce`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.orm import Session

from newsletter.bounces.handling import Handled, record_bounce, record_system_bounce
from newsletter.bounces.parse import BounceResult, analyse
from newsletter.config import Settings
from newsletter.mail.verp import System, decode_system_verp, decode_verp, looks_like_verp


class Token(StrEnum):
    valid = "valid"
    missing = "missing"  # no bounces+...@BOUNCE_DOMAIN address at all
    forged = "forged"  # looks like ours, signature wrong


def delivery_from(addresses: Iterable[str], settings: Settings) -> tuple[Token, int | None]:
    """The delivery id of the first valid VERP address, and whether a forged one was seen."""
    state = Token.missing
    for address in addresses:
        found = decode_verp(address, settings)
        if found is not None:
            return Token.valid, found
        if looks_like_verp(address, settings):
            state = Token.forged
    return state, None


def _system_mail(addresses: Iterable[str], settings: Settings) -> tuple[System, int] | None:
    """The confirmation or test send a bounce is about, from its genuine return path."""
    for address in addresses:
        found = decode_system_verp(address, settings)
        if found is not None:
            return found
    return None


@dataclass
class MessageOutcome:
    """What became of one message: ``status`` is ``recorded``, ``not-a-bounce``,
    ``forged-token`` or ``no-token``; ``handled`` has one entry per recipient."""

    status: str
    results: list[BounceResult] = field(default_factory=list)
    handled: list[Handled] = field(default_factory=list)


def message_ref(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:32]


def handle_message(
    session: Session,
    settings: Settings,
    raw: bytes,
    *,
    source: str,
    rcpt_to: list[str] | None = None,
    match_address: bool = False,
    results: list[BounceResult] | None = None,
) -> MessageOutcome:
    """Parse ``raw`` (unless ``results`` are given) and record every recipient's bounce.

    Mail without a valid VERP token changes nothing unless ``match_address`` (input an
    operator vouches for): then the failed address in the text names the subscriber.
    """
    if results is None:
        results = analyse(raw, rcpt_to)
    if not results:
        return MessageOutcome("not-a-bounce")
    addresses = [*(rcpt_to or []), *results[0].sent_to]
    state, delivery_id = delivery_from(addresses, settings)
    system = _system_mail(addresses, settings) if state is not Token.valid else None
    if system is not None:
        kind, ident = system
        counted = [
            record_system_bounce(
                session,
                settings,
                result,
                kind=kind,
                ident=ident,
                source=source,
                ref=result.original_message_id or message_ref(raw),
            )
            for result in results
        ]
        return MessageOutcome("recorded", results, counted)
    if state is not Token.valid and not match_address:
        return MessageOutcome("forged-token" if state is Token.forged else "no-token", results)
    ref = message_ref(raw)
    handled = [
        record_bounce(
            session,
            settings,
            result,
            delivery_id=delivery_id,
            source=source,
            match_address=match_address,
            ref=result.original_message_id or ref,
        )
        for result in results
    ]
    return MessageOutcome("recorded", results, handled)
