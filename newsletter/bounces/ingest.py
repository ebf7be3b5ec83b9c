"""`newsletter bounces ingest FILE…`: .eml and .mbox files an operator has; and
:func:`record_group`, many messages in one transaction for the bounce-server.

Everything is read and parsed before anything is written (parsing is pure), so a bad file
stops the command with its name and leaves the database untouched, and the good files go
in one transaction. An operator's old mailbox predates VERP or carries tokens signed with
another key, so here a bounce without a valid token is matched by the failed address:
the operator vouches for the file, unlike mail arriving from the internet.
"""

from __future__ import annotations

import logging
import mailbox
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from newsletter.bounces.handling import (
    _RANK,
    COMPLAINT_REASON,
    HARD_REASON,
    SOFT_REASON,
    Handled,
    _emit,
    _status,
    fingerprint,
    soft_scores,
)
from newsletter.bounces.inbound import MessageOutcome, delivery_from, handle_message
from newsletter.bounces.parse import BounceResult, analyse
from newsletter.config import Settings
from newsletter.errors import InvalidInput
from newsletter.models import (
    BounceEvent,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Suppression,
    utcnow,
)
from newsletter.subscriptions.addresses import domain_of, email_hash

log = logging.getLogger(__name__)
SOURCE = "ingest"


@dataclass
class Parsed:
    path: Path
    index: int
    raw: bytes
    results: list[BounceResult]


@dataclass
class IngestReport:
    messages: int = 0
    skipped: list[str] = field(default_factory=list)  # "FILE#n: why"
    actions: Counter[str] = field(default_factory=Counter)


def read_messages(path: Path, max_bytes: int) -> list[bytes]:
    """The messages in one file; InvalidInput naming the file when it cannot be used."""
    try:
        if path.is_dir():
            raise InvalidInput("file", f"{path}: is a directory, not a message file")
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(5)
    except OSError as exc:
        raise InvalidInput("file", f"{path}: cannot be read ({exc.strerror})") from None
    if size == 0:
        raise InvalidInput("file", f"{path}: is empty")
    if path.suffix.lower() == ".mbox" or head == b"From ":
        try:
            box = mailbox.mbox(path, create=False)
            messages = [box.get_bytes(key) for key in box.keys()]
        except (OSError, mailbox.Error) as exc:
            raise InvalidInput("file", f"{path}: not a readable mbox ({exc})") from None
        if not messages:
            raise InvalidInput("file", f"{path}: the mbox holds no messages")
        return messages
    if size > max_bytes:
        raise InvalidInput("file", f"{path}: larger than {max_bytes} bytes")
    return [path.read_bytes()]


def parse_files(paths: list[Path], max_bytes: int) -> tuple[list[Parsed], list[str]]:
    """Parse everything; a file with no bounce at all is an input error."""
    parsed: list[Parsed] = []
    skipped: list[str] = []
    for path in paths:
        found = 0
        messages = read_messages(path, max_bytes)
        for index, raw in enumerate(messages, 1):
            results = analyse(raw[:max_bytes])
            label = f"{path}#{index}" if len(messages) > 1 else str(path)
            if not results:
                skipped.append(f"{label}: not a bounce, complaint or auto-reply")
                continue
            found += 1
            parsed.append(Parsed(path, index, raw, results))
        if not found:
            raise InvalidInput("file", f"{path}: no bounce, complaint or auto-reply found in it")
    return parsed, skipped


def ingest(session: Session, settings: Settings, parsed: list[Parsed]) -> IngestReport:
    report = IngestReport()
    for item in parsed:
        outcome = handle_message(
            session, settings, item.raw, source=SOURCE, match_address=True, results=item.results
        )
        report.messages += 1
        for handled in outcome.handled:
            report.actions[handled.action] += 1
    return report


@dataclass(frozen=True)
class Arrived:
    """One message from a way in that stores in groups (the bounce-server): parsed before
    the transaction, so the writer holds the database only for the writes."""

    raw: bytes
    rcpt_to: list[str]
    results: list[BounceResult]


@dataclass
class _Row:
    """One bounce of the set-based part of a group: its own reader, its one result."""

    index: int
    result: BounceResult
    delivery: Delivery
    subscriber: Subscriber
    mark: str
    action: str = "duplicate"


def record_group(
    session: Session, settings: Settings, items: Sequence[Arrived], *, source: str
) -> list[MessageOutcome]:
    """Record many messages in the caller's one transaction with the effects each would
    have had through :func:`handle_message` alone, in arrival order.

    Why two parts: a bounce whose reader no other message of the group touches commutes
    with everything else in the group, so those are written set-based (one INSERT of the
    events with ON CONFLICT DO NOTHING on the fingerprint, one of the suppressions, one
    UPDATE of the complaints' subscriptions) with the policy of
    :mod:`newsletter.bounces.handling` applied to what was really inserted. Everything
    else - two bounces for one reader, several recipients in one report, a bounce of a
    confirmation mail, no delivery found - goes through :func:`handle_message` itself,
    after the set-based part and in order, so the later bounce sees the earlier one
    exactly as it would one message at a time.
    """
    now = utcnow()
    deliveries, subscribers = _preload(session, settings, items)
    rows, slow = _split(settings, items, deliveries, subscribers)
    if rows and not _insert_events(session, rows, source, now):
        slow = sorted([*slow, *(row.index for row in rows)])
        rows = []
    _apply_rows(session, settings, rows, now)
    outcomes: dict[int, MessageOutcome] = {}
    for row in rows:
        handled = Handled(row.action, None, row.subscriber.id)
        outcomes[row.index] = MessageOutcome("recorded", [row.result], [handled])
    for index in slow:
        item = items[index]
        outcomes[index] = handle_message(
            session, settings, item.raw, source=source, rcpt_to=item.rcpt_to, results=item.results
        )
    del deliveries, subscribers  # kept alive until here: the session holds them weakly
    return [outcomes[i] for i in range(len(items))]


def _delivery_id(settings: Settings, item: Arrived) -> int | None:
    if not item.results:
        return None
    return delivery_from([*item.rcpt_to, *item.results[0].sent_to], settings)[1]


def _preload(
    session: Session, settings: Settings, items: Sequence[Arrived]
) -> tuple[dict[int, Delivery], dict[int, Subscriber]]:
    """The group's deliveries and their readers in one query; they stay in the session,
    so :func:`handle_message` finds them there too. A delivery whose reader is gone is
    left to it (the slow part).

    The readers are locked (PostgreSQL; in id order, so two groups cannot deadlock on
    them): with several server processes, a group that bounces a reader another group is
    bouncing waits for its commit and then counts its events, as one writer would."""
    ids = {d for d in (_delivery_id(settings, item) for item in items) if d is not None}
    if not ids:
        return {}, {}
    deliveries: dict[int, Delivery] = {}
    subscribers: dict[int, Subscriber] = {}
    found = session.execute(
        select(Delivery, Subscriber)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(ids))
        .order_by(Subscriber.id)
        .with_for_update(of=Subscriber)
    )
    for delivery, subscriber in found:
        deliveries[delivery.id] = delivery
        subscribers[subscriber.id] = subscriber
    return deliveries, subscribers


def _split(
    settings: Settings,
    items: Sequence[Arrived],
    deliveries: dict[int, Delivery],
    subscribers: dict[int, Subscriber],
) -> tuple[list[_Row], list[int]]:
    """Set-based rows (one result, a known delivery and reader no other item names) and
    the indexes of the rest."""
    found: list[Delivery | None] = []
    for item in items:
        delivery_id = _delivery_id(settings, item)
        found.append(deliveries.get(delivery_id) if delivery_id is not None else None)
    readers = Counter(d.subscriber_id for d in found if d is not None and d.subscriber_id)
    rows: list[_Row] = []
    slow: list[int] = []
    for index, (item, delivery) in enumerate(zip(items, found, strict=True)):
        reader = delivery.subscriber_id if delivery is not None else None
        subscriber = subscribers.get(reader) if reader is not None else None
        if (
            delivery is None
            or subscriber is None
            or readers[subscriber.id] > 1
            or len(item.results) != 1
        ):
            if item.results:
                slow.append(index)
            continue
        mark = fingerprint(item.results[0], delivery.id, subscriber.id, "")
        rows.append(_Row(index, item.results[0], delivery, subscriber, mark))
    return rows, slow


def _insert_events(session: Session, rows: list[_Row], source: str, now: datetime) -> bool:
    """Insert the rows' events, skipping fingerprints already stored; marks the new ones.
    False on a database without INSERT … ON CONFLICT (then the caller goes row by row)."""
    insert = _dialect_insert(session)
    if insert is None:
        return False
    values = [
        {
            "delivery_id": row.delivery.id,
            "subscriber_id": row.subscriber.id,
            "kind": row.result.kind,
            "reason": (row.result.reason or "undefined")[:64],
            "status_code": (row.result.status or None) and row.result.status[:16],
            "diagnostic": (row.result.diagnostic or None) and row.result.diagnostic[:2000],
            "remote_domain": row.result.remote_domain or domain_of(row.result.recipient) or None,
            "source": source[:32],
            "created_at": now,
            "fingerprint": row.mark,
        }
        for row in rows
    ]
    session.flush()  # the session's own pending changes first, as an ORM insert would
    # Core, on the table: the ORM's bulk insert path cost more CPU than the whole
    # statement's round trip, and nothing here needs the rows as objects.
    table = BounceEvent.__table__
    stmt = insert(table).on_conflict_do_nothing(index_elements=["fingerprint"])
    found = session.connection().execute(stmt.returning(table.c.fingerprint), values)
    new = set(found.scalars())
    for row in rows:
        row.action = "new" if row.mark in new else "duplicate"
    return True


def _apply_rows(session: Session, settings: Settings, rows: list[_Row], now: datetime) -> None:
    """The policy of :func:`newsletter.bounces.handling._apply` for inserted rows, and
    the webhook event :func:`newsletter.bounces.handling.record_bounce` emits.

    The soft scores are read once for the group, after the inserts: each row's reader is
    its own, so another row's writes cannot change them."""
    suppressions: dict[str, str] = {}
    complained: list[int] = []
    bounced: dict[Delivery, dict[str, Any]] = {}
    readers: dict[Subscriber, dict[str, Any]] = {}
    new = [row for row in rows if row.action == "new"]
    scores = soft_scores(
        session, settings, [row.subscriber.id for row in new if row.result.kind == "soft"], now
    )
    for row in new:
        kind, delivery, subscriber = row.result.kind, row.delivery, row.subscriber
        if kind in ("policy", "ignore"):
            row.action = "counted" if kind == "policy" else "ignored"
            continue
        if kind == "hard":
            bounced[delivery] = {"status": DeliveryStatus.bounced, "updated_at": now}
            reason, status, row.action = HARD_REASON, SubscriberStatus.bounced, "suppressed"
        elif kind == "complaint":
            complained.append(subscriber.id)
            reason, status, row.action = (
                COMPLAINT_REASON,
                SubscriberStatus.complained,
                "unsubscribed",
            )
        else:  # soft: the score reads the events just inserted
            score = scores[subscriber.id]
            if score != subscriber.bounce_score:
                readers.setdefault(subscriber, {})["bounce_score"] = score
            if score < settings.soft_bounce_limit:
                row.action = "scored"
                _emit(session, row.result, subscriber, delivery, row.action)
                continue
            reason, status, row.action = SOFT_REASON, SubscriberStatus.bounced, "suppressed"
        if (
            _RANK.get(status, 0) >= _RANK.get(_status(subscriber), 0)
            and status != subscriber.status
        ):
            readers.setdefault(subscriber, {})["status"] = status
        suppressions.setdefault(email_hash(subscriber.email, settings.secret), reason)
        _emit(session, row.result, subscriber, delivery, row.action)
        log.info(
            "bounce %s/%s: delivery %s subscriber %s -> %s",
            kind,
            row.result.reason,
            delivery.id,
            subscriber.id,
            row.action,
        )
    _update_rows(session, bounced)
    _update_rows(session, readers)
    if complained:
        session.execute(
            update(Subscription)
            .where(
                Subscription.subscriber_id.in_(complained),
                Subscription.status != SubscriptionStatus.unsubscribed,
            )
            .values(status=SubscriptionStatus.unsubscribed, unsubscribed_at=now)
            .execution_options(synchronize_session="fetch")
        )
    insert = _dialect_insert(session)
    if suppressions and insert is not None:
        stmt = insert(Suppression.__table__).on_conflict_do_nothing(index_elements=["email_hash"])
        hashes = [{"email_hash": h, "reason": r} for h, r in suppressions.items()]
        session.connection().execute(stmt, hashes)


def _update_rows(session: Session, changes: Mapping[Any, dict[str, Any]]) -> None:
    """UPDATE … WHERE id = … for each object's changed columns: one executemany per set of
    columns, in id order (two server processes lock rows in the same order). The objects
    take the values as already stored, so the flush does not write them again.

    Why not the ORM's flush: its unit of work cost more CPU per group than the statements'
    round trips; the values written are the same."""
    groups: dict[tuple[Any, tuple[str, ...]], list[Any]] = {}
    for obj in sorted(changes, key=lambda o: o.id):
        groups.setdefault((type(obj), tuple(sorted(changes[obj]))), []).append(obj)
    for (model, columns), objects in groups.items():
        table = model.__table__
        stmt = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({name: bindparam(f"new_{name}") for name in columns})
        )
        params = [
            {"row_id": obj.id, **{f"new_{k}": v for k, v in changes[obj].items()}}
            for obj in objects
        ]
        session.connection().execute(stmt, params)
        for obj in objects:
            for name, value in changes[obj].items():
                set_committed_value(obj, name, value)


def _dialect_insert(session: Session) -> Any:
    """INSERT with ON CONFLICT for the session's database, None for others."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    return None
