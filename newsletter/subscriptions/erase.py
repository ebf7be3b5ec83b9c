"""Erasure: remove a person's data, keep only a keyed hash so imports skip them.

What goes, in one database transaction (the caller's):

- the subscriber row and their subscriptions (consent records included);
- the address, in any case, wherever else a text column holds it: the SMTP replies of
  their deliveries, the diagnostics of their bounce events (a DSN quotes the recipient:
  ``552 5.2.2 <Ana@Example.org>: Mailbox full``), and any other row of any table that
  quotes it (a policy bounce kept without a subscriber, a send's pause reason). Their
  own deliveries and bounce events are kept, anonymous (no subscriber, the address
  replaced), because send statistics and the per-domain bounce report count them; in
  those rows the bare local part (``user ana unknown``) goes too.

And on disk, once the database work is done: every message in the built-in catcher's
outbox (a Maildir) to or about the address. The send journal holds delivery ids only
(file and Redis alike), which point at anonymous rows after this.

What stays: the suppression hash (reason "erased"), so an import or an operator cannot
put the address back; only the reader's own confirmed sign-up can (consent.confirm).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import default
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Column, ColumnElement, String, Table, and_, func, or_, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import Base, BounceEvent, Delivery, Subscriber, Suppression
from newsletter.subscriptions.addresses import email_hash, normalise_email

log = logging.getLogger(__name__)

REDACTED = "[erased]"
ERASED_REASON = "erased"


def erase(session: Session, settings: Settings, email: str) -> bool:
    """Remove the person's data; keep only a keyed hash so imports skip them.

    False if there was nothing to erase (no subscriber and no trace of the address).
    """
    address = normalise_email(email)
    trace = Trace(address)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    scrubbed = 0
    if subscriber is not None:
        scrubbed += _anonymise_own_rows(session, subscriber.id, trace)
        session.delete(subscriber)
        session.flush()
    scrubbed += _scrub_everywhere(session, trace)
    if subscriber is None and scrubbed == 0:
        return False
    _suppress_as_erased(session, settings, address)
    session.flush()
    removed = scrub_outbox(settings.outbox_dir, trace)
    log.info(
        "erased a subscriber: %d text values scrubbed, %d caught messages removed",
        scrubbed,
        removed,
    )
    return True


class Trace:
    """The ways an address shows up in stored text, matched case-insensitively.

    ``full``: the address itself, also URL- or quoted-printable-encoded (``%40``, ``=40``)
    and with its domain in either Unicode or ASCII (IDNA) form. ``local``: the local part
    standing alone, for rows known to be this person's only.
    """

    def __init__(self, address: str) -> None:
        local, _, domain = address.rpartition("@")
        self.address = address
        self.local = local
        self.domains = sorted({domain, _ascii_domain(domain)}, key=len, reverse=True)
        domains = "|".join(re.escape(d) for d in self.domains)
        self.full = re.compile(rf"{re.escape(local)}(?:@|%40|=40)(?:{domains})", re.IGNORECASE)
        edge = r"[\w.%+'-]"
        self.alone = re.compile(rf"(?<!{edge}){re.escape(local)}(?!{edge}|@)", re.IGNORECASE)

    def found(self, text: str) -> bool:
        return self.full.search(text) is not None

    def redact(self, text: str, *, own: bool = False) -> str:
        text = self.full.sub(REDACTED, text)
        if own and len(self.local) >= 2:
            text = self.alone.sub(REDACTED, text)
        return text

    def candidates(self, column: ColumnElement[Any], dialect: str) -> ColumnElement[bool]:
        """A superset of the rows whose column holds the address: every form contains the
        local part and one form of the domain. SQLite's lower() folds ASCII only, so a
        non-ASCII part is left to the exact check in Python there."""
        lowered = func.lower(column)

        def usable(part: str) -> bool:
            return part.isascii() or dialect != "sqlite"

        domains = [lowered.contains(d, autoescape=True) for d in self.domains if usable(d)]
        parts: list[ColumnElement[bool]] = []
        if usable(self.local):
            parts.append(lowered.contains(self.local, autoescape=True))
        if domains:
            parts.append(or_(*domains))
        return and_(column.is_not(None), *parts)


def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _text_columns(table: Table) -> Iterator[Column[Any]]:
    for column in table.columns:
        if isinstance(column.type, String) and not column.primary_key:
            yield column


def _fit(column: Column[Any], text: str) -> str:
    length = getattr(column.type, "length", None)
    return text[:length] if length else text


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


# Free text about one recipient, where even the bare local part is redacted in their rows
# (never in a status, kind or reason column: "sent@…" must not rename the status "sent").
_FREE_TEXT = frozenset({"smtp_reply", "diagnostic"})


def _anonymise_own_rows(session: Session, subscriber_id: int, trace: Trace) -> int:
    """Their deliveries and bounce events stay for the counts, with no way back to them."""
    delivery_ids = select(Delivery.id).where(Delivery.subscriber_id == subscriber_id)
    own_events = or_(
        BounceEvent.subscriber_id == subscriber_id, BounceEvent.delivery_id.in_(delivery_ids)
    )
    scrubbed = _redact_rows(session, _table(BounceEvent), own_events, trace, own=_FREE_TEXT)
    scrubbed += _redact_rows(
        session, _table(Delivery), Delivery.subscriber_id == subscriber_id, trace, own=_FREE_TEXT
    )
    session.execute(
        update(BounceEvent)
        .where(BounceEvent.subscriber_id == subscriber_id)
        .values(subscriber_id=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber_id)
        .values(subscriber_id=None)
        .execution_options(synchronize_session=False)
    )
    return scrubbed


def _redact_rows(
    session: Session,
    table: Table,
    where: ColumnElement[bool],
    trace: Trace,
    *,
    own: frozenset[str] = frozenset(),
) -> int:
    """Replace the address in every text column of the matching rows (and the bare local
    part in the columns named in `own`); the number of values changed."""
    columns = list(_text_columns(table))
    (key,) = table.primary_key.columns
    changed = 0
    for row in session.execute(select(key, *columns).where(where)).all():
        values: dict[str, str] = {}
        for column, value in zip(columns, row[1:], strict=True):
            if isinstance(value, str):
                clean = trace.redact(value, own=column.name in own)
                if clean != value:
                    values[column.name] = _fit(column, clean)
        if values:
            session.execute(update(table).where(key == row[0]).values(**values))
            changed += len(values)
    return changed


def _scrub_everywhere(session: Session, trace: Trace) -> int:
    """Any row of any table that quotes the address (a policy bounce recorded without a
    subscriber, a send's pause reason, a rejected webhook's reason)."""
    dialect = session.get_bind().dialect.name
    changed = 0
    for table in Base.metadata.sorted_tables:
        if table.name == Suppression.__tablename__:
            continue  # hashes only
        columns = list(_text_columns(table))
        if not columns or len(table.primary_key.columns) != 1:
            continue
        where = or_(*(trace.candidates(c, dialect) for c in columns))
        changed += _redact_rows(session, table, where, trace)
    return changed


def _suppress_as_erased(session: Session, settings: Settings, address: str) -> None:
    """One hash per address; an erasure is the strongest reason and replaces a bounce's."""
    digest = email_hash(address, settings.secret)
    row = session.scalar(select(Suppression).where(Suppression.email_hash == digest))
    if row is None:
        session.add(Suppression(email_hash=digest, reason=ERASED_REASON))
    else:
        row.reason = ERASED_REASON


# The catcher's outbox --------------------------------------------------------------------


def scrub_outbox(folder: Path, trace: Trace) -> int:
    """Delete every caught message that names the address (envelope, headers or body)."""
    removed = 0
    for path in _maildir_files(folder):
        try:
            raw = path.read_bytes()
        except OSError:
            continue  # delivered or removed meanwhile
        if _mentions(raw, trace):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _maildir_files(folder: Path) -> Iterable[Path]:
    for sub in ("new", "cur", "tmp"):
        box = folder / sub
        if box.is_dir():
            yield from (p for p in box.iterdir() if p.is_file())


def _mentions(raw: bytes, trace: Trace) -> bool:
    if trace.found(raw.decode("utf-8", "replace")):
        return True
    # Encoded words in headers and base64 or quoted-printable bodies hide it from the
    # raw bytes: look at the decoded message too.
    try:
        message = message_from_bytes(raw, policy=default)
    except Exception:  # noqa: BLE001 - a malformed message was checked raw above
        return False
    return any(trace.found(text) for text in _decoded_texts(message))


def _decoded_texts(message: Message) -> Iterator[str]:
    for part in message.walk():
        for _name, value in part.items():
            yield str(value)
        if part.is_multipart():
            continue
        try:
            content = part.get_content() if isinstance(part, EmailMessage) else None
        except Exception:  # noqa: BLE001 - an undecodable part: its raw form was checked
            content = None
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        if isinstance(content, str):
            yield content
