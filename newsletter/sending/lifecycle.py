"""The life of a send as one state machine: every change of Digest.status is made here.

    draft ──start──▶ sending ──finish──▶ sent ──retry──▶ sending
    scheduled ─start─▶ sending ◀──resume── paused ◀──pause── sending
    scheduled, sending, paused ──cancel──▶ cancelled
    draft ──submit──▶ awaiting_approval ──start (approved)──▶ sending
    awaiting_approval ──withdraw──▶ draft
    draft ──schedule──▶ scheduled ──unschedule──▶ draft   (sending/later.py)

`TRANSITIONS` is the whole table; `next_status` answers from it alone (pure, raises
`IllegalTransition`), and each write is one conditional UPDATE … WHERE status IN (the
event's sources) that returns whether it happened, so two processes racing for the same
send (an operator, a batch, recovery) can never both move it, nor move it from a state
it has left meanwhile.

Every state that is not final has a way out by itself or by one operator action:

* sending ends `sent` through `finish_if_done`, which a batch calls when it sees nothing
  open, and which resume, retry and recovery call too. A batch that finds the send
  paused does not finish it; the resume that follows does, in its own transaction, when
  by then nothing is open (otherwise the send would stay `sending` with nothing queued,
  and no batch would ever come to finish it).
* paused goes back to sending by `resume` (the operator; the outage probe by itself).

The draft is created by digests.compose (an INSERT with status draft), not here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Result, func, select, update
from sqlalchemy.orm import Session

from newsletter.errors import Conflict
from newsletter.models import Delivery, DeliveryStatus, Digest, DigestStatus, MailingList, utcnow
from newsletter.webhooks import events

S = DigestStatus
FINAL = frozenset({S.sent, S.cancelled})
OPEN = (DeliveryStatus.queued, DeliveryStatus.sending, DeliveryStatus.deferred)


class Event(enum.StrEnum):
    start = "start"
    pause = "pause"
    resume = "resume"
    cancel = "cancel"
    finish = "finish"
    retry = "retry"
    submit = "submit"  # asked to send with NEWSLETTER_SEND_APPROVAL on (sending/approval.py)
    withdraw = "withdraw"  # the request taken back, or refused by the approver
    schedule = "schedule"  # to start at a chosen time (sending/later.py)
    unschedule = "unschedule"  # that time called off before it came: a draft again


class PausedBy(enum.StrEnum):
    """Who paused a send (Digest.paused_by); only an outage pause resumes by itself."""

    operator = "operator"
    outage = "outage"
    bounce_rate = "bounce_rate"


@dataclass(frozen=True)
class Transition:
    sources: frozenset[DigestStatus]
    target: DigestStatus


TRANSITIONS: Mapping[Event, Transition] = {
    Event.start: Transition(frozenset({S.draft, S.scheduled, S.awaiting_approval}), S.sending),
    Event.pause: Transition(frozenset({S.sending}), S.paused),
    Event.resume: Transition(frozenset({S.paused}), S.sending),
    Event.cancel: Transition(frozenset({S.scheduled, S.sending, S.paused}), S.cancelled),
    Event.finish: Transition(frozenset({S.sending}), S.sent),
    # The failed deliveries queued again: a finished send runs again, a paused one resumes.
    Event.retry: Transition(frozenset({S.sending, S.paused, S.sent}), S.sending),
    Event.submit: Transition(frozenset({S.draft}), S.awaiting_approval),
    Event.withdraw: Transition(frozenset({S.awaiting_approval}), S.draft),
    Event.schedule: Transition(frozenset({S.draft}), S.scheduled),
    Event.unschedule: Transition(frozenset({S.scheduled}), S.draft),
}


class IllegalTransition(Conflict):
    """The event is not allowed from the send's status: a Conflict, so an InvalidInput
    (CLI exit 2, HTTP 409)."""

    def __init__(
        self,
        current: str,
        event: Event,
        message: str | None = None,
        *,
        field: str = "id",
    ) -> None:
        super().__init__(field, message or f"a send that is {current} cannot {event}")
        self.current = current
        self.event = event


def next_status(current: str, event: Event) -> DigestStatus:
    """The status `event` leads to from `current`; raises IllegalTransition if none."""
    transition = TRANSITIONS[event]
    if current not in transition.sources:
        raise IllegalTransition(current, event)
    return transition.target


def allows(current: str, event: Event) -> bool:
    return current in TRANSITIONS[event].sources


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched (session.execute types its result as the generic Result)."""
    return cast(CursorResult[Any], result).rowcount


def _apply(
    session: Session,
    digest_id: int,
    event: Event,
    values: Mapping[str, object],
    *where: Any,
) -> bool:
    transition = TRANSITIONS[event]
    return bool(
        rowcount(
            session.execute(
                update(Digest)
                .where(Digest.id == digest_id, Digest.status.in_(transition.sources), *where)
                .values(status=transition.target, **values)
            )
        )
    )


def start(session: Session, digest_id: int, *, ledger_complete: bool) -> bool:
    """draft or scheduled → sending, the ledger's first chunk written (job.start_send)."""
    now = utcnow()
    started = _apply(
        session,
        digest_id,
        Event.start,
        {
            "ledger_complete": ledger_complete,
            "started_at": now,
            "progress_at": now,
            "finished_at": None,
            "pause_reason": None,
            "paused_by": None,
        },
    )
    if started:
        _send_event(session, digest_id, "send.started")
    return started


def submit(session: Session, digest_id: int, requested_by: str) -> bool:
    """draft → awaiting_approval: a second person must approve (sending/approval.py)."""
    values = {"requested_by": requested_by, "approved_by": None, "approved_at": None}
    return _apply(session, digest_id, Event.submit, values)


def withdraw(session: Session, digest_id: int) -> bool:
    """awaiting_approval → draft: nothing was written to the ledger, nothing is used up."""
    return _apply(session, digest_id, Event.withdraw, {"requested_by": None})


def schedule(session: Session, digest_id: int, send_at: datetime, requested_by: str) -> bool:
    """draft → scheduled: beat starts it at `send_at` (sending/later.py)."""
    values = {"send_at": send_at, "requested_by": requested_by, "pause_reason": None}
    return _apply(session, digest_id, Event.schedule, values)


def unschedule(session: Session, digest_id: int) -> bool:
    """scheduled → draft: nothing was written to the ledger, nothing is used up."""
    return _apply(session, digest_id, Event.unschedule, {"send_at": None, "requested_by": None})


def pause(session: Session, digest_id: int, by: PausedBy, reason: str) -> bool:
    """sending → paused; batches stop at their next check and give their rows back."""
    return _apply(session, digest_id, Event.pause, {"paused_by": by.value, "pause_reason": reason})


def resume(session: Session, digest_id: int, *, only: PausedBy | None = None) -> bool:
    """paused → sending (only a send paused by `only`, when given).

    The caller must then call `finish_if_done` in the same transaction, or enqueue the
    open ranges: a send whose last batch ended while it was paused has nothing left to
    enqueue and would otherwise stay sending for good.
    """
    where = (Digest.paused_by == only.value,) if only is not None else ()
    values = {"paused_by": None, "pause_reason": None, "progress_at": utcnow()}
    return _apply(session, digest_id, Event.resume, values, *where)


def cancel(session: Session, digest_id: int) -> bool:
    """scheduled, sending or paused → cancelled (the caller closes the open deliveries)."""
    return _apply(session, digest_id, Event.cancel, {"finished_at": utcnow()})


def retry(session: Session, digest_id: int) -> bool:
    """sending, paused or sent → sending, after failed deliveries were queued again."""
    values = {"finished_at": None, "paused_by": None, "pause_reason": None, "progress_at": utcnow()}
    return _apply(session, digest_id, Event.retry, values)


def finish_if_done(session: Session, digest_id: int) -> bool:
    """sending → sent if the whole ledger is written and nothing in it is open.

    A send whose ledger is incomplete (job.complete_ledger has not run) is not done: its
    rest is not written yet. The row lock comes first because complete_ledger holds it
    while inserting: on PostgreSQL an UPDATE that waited for it would re-check only the
    digest row, see ledger_complete true and miss the new queued rows; once we hold the
    lock, the UPDATE's own snapshot sees them. On SQLite (no FOR UPDATE) the single
    UPDATE runs under the write lock and sees every committed row.
    """
    session.execute(select(Digest.id).where(Digest.id == digest_id).with_for_update())
    still_open = (
        select(Delivery.id)
        .where(Delivery.digest_id == digest_id, Delivery.status.in_(OPEN))
        .exists()
    )
    finished = _apply(
        session,
        digest_id,
        Event.finish,
        {"finished_at": utcnow()},
        Digest.ledger_complete.is_(True),
        ~still_open,
    )
    if finished:
        _send_event(session, digest_id, "send.finished")
    return finished


def _send_event(session: Session, digest_id: int, kind: str) -> None:
    """The webhook event of a send starting or finishing, with the ledger's counts by
    status (so far, when starting). Costs nothing when no endpoint asked for it: the
    counts are only read when one did (newsletter/webhooks/)."""
    if not events.wants(session, kind):
        return
    slug = session.scalar(
        select(MailingList.slug)
        .join(Digest, Digest.list_id == MailingList.id)
        .where(Digest.id == digest_id)
    )
    counts = {
        str(status): int(n)
        for status, n in session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.digest_id == digest_id)
            .group_by(Delivery.status)
        )
    }
    data = {
        "digest_id": digest_id,
        "list": slug,
        "recipients": sum(counts.values()),
        "counts": counts,
    }
    events.emit(session, kind, data)
