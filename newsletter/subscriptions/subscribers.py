"""Subscriber records for listing and export, and CSV import: streamed, never all in memory."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import InvalidInput
from newsletter.models import MailingList, Subscriber, Subscription
from newsletter.subscriptions.consent import ConsentRecord, Outcome, Refusal, subscribe
from newsletter.subscriptions.lists import find_list


def subscriber_records(
    session: Session, list_slug: str | None = None
) -> Iterator[dict[str, object]]:
    """email, name, status and subscriptions (slug → state), ordered by id, in pages."""
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
    session: Session, settings: Settings, stream: IO[str], list_slug: str, confirmed: bool
) -> ImportReport:
    """Columns email,name. Rows with a bad address are reported, the rest imported.

    Without --confirmed every new address gets the confirmation mail (the caller sends it),
    which is what consent law expects of an imported list of unknown provenance.
    A row for someone who unsubscribed from the list, complained, bounced or was erased
    is skipped with its reason, with or without --confirmed: no subscription, no mail.
    """
    find_list(session, list_slug)
    reader = csv.DictReader(stream)
    if not reader.fieldnames or "email" not in [f.strip().lower() for f in reader.fieldnames]:
        raise InvalidInput("file", "The CSV needs a header row with an 'email' column.")
    report = ImportReport()
    for lineno, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
        try:
            result = subscribe(
                session,
                settings,
                email=row.get("email", ""),
                name=row.get("name"),
                list_slug=list_slug,
                consent=ConsentRecord(source="import"),
                confirmed=confirmed,
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
            report.pending_ids.append(result.subscription_id)
        else:
            report.unchanged += 1
    return report
