"""Subscriber records for listing and export, and CSV import: streamed, never all in memory."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import InvalidInput
from newsletter.models import (
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from newsletter.subscriptions.addresses import clean_name, normalise_email
from newsletter.subscriptions.attributes import MAX_KEYS, check_name
from newsletter.subscriptions.attributes import clean as clean_attributes
from newsletter.subscriptions.consent import (
    ConsentRecord,
    Outcome,
    Refusal,
    SubscribeResult,
    operator_refusal,
    subscribe,
)
from newsletter.subscriptions.lists import find_list

PROGRESS = 500


def subscriber_records(
    session: Session, list_slug: str | None = None
) -> Iterator[dict[str, object]]:
    """email, name, status, subscriptions (slug → state), attributes, language and time
    zone, ordered by id, in pages."""
    list_id = find_list(session, list_slug).id if list_slug else None
    last_id = 0
    while True:
        query = select(Subscriber).where(Subscriber.id > last_id).order_by(Subscriber.id).limit(500)
        if list_id is not None:
            query = query.where(
                select(Subscription.id)
                .where(Subscription.subscriber_id == Subscriber.id, Subscription.list_id == list_id)
                .exists()
            )
        page = list(session.scalars(query))
        if not page:
            return
        ids = [s.id for s in page]
        subs: dict[int, dict[str, str]] = {i: {} for i in ids}
        for sid, slug, status in session.execute(
            select(Subscription.subscriber_id, MailingList.slug, Subscription.status)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscription.subscriber_id.in_(ids))
        ):
            subs[sid][slug] = status
        for s in page:
            yield {
                "email": s.email,
                "name": s.name,
                "status": s.status,
                "subscriptions": subs[s.id],
                "created_at": s.created_at.isoformat(),
                "attributes": dict(s.attributes or {}),
                "language": s.language,
                "timezone": s.timezone,
            }
        last_id = ids[-1]
        session.expunge_all()


@dataclass(frozen=True)
class Skipped:
    """A row the import may not act on: the reader's own choice (or mailbox) stands."""

    line: int
    email: str
    reason: Refusal

    def record(self) -> dict[str, object]:
        return {"line": self.line, "email": self.email, "reason": self.reason.value}


@dataclass
class ImportReport:
    added: int = 0
    pending: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    pending_ids: list[int] = field(default_factory=list)


def import_csv(
    session: Session,
    settings: Settings,
    stream: IO[str],
    list_slug: str,
    confirmed: bool,
    *,
    dry_run: bool = False,
    first_line: int = 2,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Columns email,name; `language` and `timezone` set the reader's own; any other
    column is an attribute (its header a valid attribute name, checked before anything
    is written; an empty cell sets nothing). Rows with a bad address or value are
    reported, the rest imported.

    Without --confirmed every new address gets the confirmation mail (the caller sends it),
    which is what consent law expects of an imported list of unknown provenance.
    A row for someone who unsubscribed from the list, complained, bounced or was erased
    is skipped with its reason, with or without --confirmed: no subscription, no mail.

    `dry_run` writes nothing and reports what the import would do, by the same rules
    (`_would_subscribe`, using `subscribe`'s own refusal check). `first_line` numbers
    the rows of a file imported in parts; `progress` hears every PROGRESS rows how
    many are done.
    """
    mlist = find_list(session, list_slug)
    reader = csv.DictReader(stream)
    extra = attribute_columns(reader.fieldnames)
    report = ImportReport()
    seen: set[str] = set()
    for lineno, row in enumerate(reader, start=first_line):
        if progress is not None and (lineno - first_line) % PROGRESS == 0 and lineno > first_line:
            progress(lineno - first_line)
        row = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
        try:
            # Empty cells set nothing; the values go through attributes.clean in subscribe.
            attributes = {n: row[n] for n in extra if (row.get(n) or "").strip()}
            if dry_run:
                clean_attributes(attributes, "file")
                result = _would_subscribe(session, settings, mlist, row, confirmed, seen)
            else:
                result = subscribe(
                    session,
                    settings,
                    email=row.get("email", ""),
                    name=row.get("name"),
                    list_slug=list_slug,
                    consent=ConsentRecord(source="import"),
                    confirmed=confirmed,
                    attributes=attributes or None,
                    language=row.get("language") or None,
                    timezone=row.get("timezone") or None,
                )
        except InvalidInput as exc:
            report.invalid.append(f"line {lineno}: {exc.message}")
            continue
        if result.refusal is not None:
            report.skipped.append(Skipped(lineno, row.get("email", "").strip(), result.refusal))
        elif result.outcome is Outcome.confirmed:
            report.added += 1
        elif result.outcome is Outcome.pending and result.subscription_id is not None:
            report.pending += 1
            if not dry_run:
                report.pending_ids.append(result.subscription_id)
        else:
            report.unchanged += 1
    return report


READER_COLUMNS = ("email", "name", "language", "timezone")


def attribute_columns(fieldnames: Sequence[str] | None) -> list[str]:
    """The columns that become attributes, or InvalidInput (field "file") naming the bad
    header: before any row is read, so a bad file writes nothing."""
    if not fieldnames:
        raise InvalidInput("file", "The CSV needs a header row with an 'email' column.")
    names = [(f or "").strip().lower() for f in fieldnames]
    if "email" not in names:
        raise InvalidInput("file", "The CSV needs a header row with an 'email' column.")
    seen: set[str] = set()
    extra: list[str] = []
    for number, name in enumerate(names, start=1):
        if name in seen:
            raise InvalidInput("file", f"column {number}: {name!r} appears twice in the header.")
        seen.add(name)
        if name in READER_COLUMNS:
            continue
        if not name:
            raise InvalidInput("file", f"column {number} has no name in the header row.")
        try:
            extra.append(check_name(name, "file"))
        except InvalidInput as exc:
            raise InvalidInput("file", f"column {number}: {exc.message}") from None
    if len(extra) > MAX_KEYS:
        raise InvalidInput("file", f"at most {MAX_KEYS} attribute columns.")
    return extra


def _would_subscribe(
    session: Session,
    settings: Settings,
    mlist: MailingList,
    row: dict[str, str],
    confirmed: bool,
    seen: set[str],
) -> SubscribeResult:
    """What `subscribe` would answer for this row, reading only. An address met earlier
    in the same file counts as unchanged, as the real import would find it there."""
    address = normalise_email(
        row.get("email", ""), check_deliverability=settings.check_deliverability
    )
    clean_name(row.get("name"))
    if address in seen:
        return SubscribeResult(Outcome.already_pending)
    seen.add(address)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    sub = (
        session.scalar(
            select(Subscription).where(
                Subscription.list_id == mlist.id, Subscription.subscriber_id == subscriber.id
            )
        )
        if subscriber is not None
        else None
    )
    refusal = operator_refusal(session, settings, address, subscriber, sub)
    if refusal is not None:
        return SubscribeResult(Outcome.suppressed, None, refusal)
    if sub is not None and sub.status == SubscriptionStatus.confirmed:
        return SubscribeResult(Outcome.already_confirmed)
    if confirmed:
        return SubscribeResult(Outcome.confirmed)
    if sub is not None and sub.confirm_sent_at is not None:
        window = timedelta(minutes=settings.confirm_resend_minutes)
        if utcnow() - sub.confirm_sent_at < window:
            return SubscribeResult(Outcome.already_pending)
    # A pending subscription has no id yet in a dry run: 0 stands for "one would be made".
    return SubscribeResult(Outcome.pending, 0)
