"""The ledger side of a batch: claiming a range's rows and folding what it learnt.

`_claim` is one UPDATE that moves the range's due rows (and a dead worker's stale ones)
to `sending` under a `Claim`, then one SELECT of what sending them needs (`Row`).
`_fold` writes the changes a batch collected (`Ledger`) in one transaction: the journal
is synced first, accepts go as id ranges, the rest as one executemany, and only rows
still under the batch's claim are written. The send loop lives in batch.py.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    bindparam,
    case,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.digests import fields
from newsletter.mail.fastpath import DigestTemplate
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestVariant,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from newsletter.sending.journal import Journal

Range = tuple[int, int]
log = logging.getLogger(__name__)
_T = cast(Table, Delivery.__table__)
_PROGRESS_EVERY = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Claim:
    """The mark a batch puts on the rows it owns (Delivery.claim).

    Rows it claimed fresh carry `fresh`; rows it took over from a dead worker carry
    `taken_over`: their attempt was counted by the first claim, and the journal may
    know them as accepted already.
    """

    token: str

    @classmethod
    def new(cls) -> Claim:
        return cls(uuid.uuid4().hex[:16])

    @property
    def fresh(self) -> str:
        return self.token

    @property
    def taken_over(self) -> str:
        return self.token + "r"

    @property
    def marks(self) -> tuple[str, str]:
        return (self.fresh, self.taken_over)


@dataclass(slots=True)
class Row:
    """A claimed delivery and what sending it needs (not frozen: one is made per message,
    and a frozen dataclass costs more to build)."""

    id: int
    taken_over: bool
    attempts: int  # counting the attempt this claim is for
    email: str | None
    name: str
    subscription_id: int | None
    eligible: bool  # still an active, confirmed subscriber
    variant: int = 0  # the DigestVariant this reader gets (digests/carry.py)
    attributes: dict[str, Any] | None = None  # read only for a digest that shows one

    @property
    def counted(self) -> int:
        """The attempt this batch's claim added to the row (0 for a taken-over one)."""
        return 0 if self.taken_over else 1


@dataclass(frozen=True, slots=True)
class Change:
    """What one delivery's ledger row becomes at the next fold."""

    delivery_id: int
    status: DeliveryStatus
    code: int | None = None
    reply: str | None = None
    next_attempt_at: datetime | None = None
    attempts_delta: int = 0  # -1 gives back the attempt counted by a claim not used
    bounce: bool = False  # a refusal that goes through the bounce policy too


@dataclass
class Ledger:
    """Changes not yet folded into the database (sent ones as bare ids: the common case).

    `order` places each of the batch's claimed rows (id → position, by id): accepts of
    rows next to each other there are folded as one id range (`sent_ranges`).
    """

    sent: list[int] = field(default_factory=list)
    other: list[Change] = field(default_factory=list)
    order: dict[int, int] = field(default_factory=dict)

    def add(self, change: Change) -> None:
        if change.status == DeliveryStatus.sent:
            self.sent.append(change.delivery_id)
        else:
            self.other.append(change)

    def sent_ranges(self) -> list[Range]:
        """The accepts as (lo, hi) id ranges, each holding no row of the batch but accepted
        ones: a run breaks at every claimed row not accepted (deferred, bounced, failed,
        not sent yet), so `id BETWEEN lo AND hi` under this batch's claim writes exactly
        the accepted rows (ids in between that the batch did not claim carry another
        claim or none). An id `order` does not place is a range of its own."""
        ranges: list[Range] = []
        last: int | None = None
        for delivery_id in sorted(self.sent):
            place = self.order.get(delivery_id)
            if place is not None and last is not None and place == last + 1:
                ranges[-1] = (ranges[-1][0], delivery_id)
            else:
                ranges.append((delivery_id, delivery_id))
            last = place
        return ranges

    def __bool__(self) -> bool:
        return bool(self.sent or self.other)


def _claim(
    settings: Settings, digest_id: int, lo: int, hi: int, claim: Claim, *, resumed: bool = False
) -> list[Row]:
    now = utcnow()
    stale = now - timedelta(seconds=settings.send_lease_seconds)
    with session_scope() as session:
        in_range = _in_range(digest_id, lo, hi)
        if resumed:
            # Its own rows of the failed run: accepts of it may be journaled only, so they
            # are handled as a takeover (journal first, attempt not counted again).
            session.execute(
                _T.update()
                .where(*in_range, _T.c.status == DeliveryStatus.sending, _T.c.claim == claim.fresh)
                .values(claim=claim.taken_over, claimed_at=now)
            )
        # One UPDATE over the range takes both: rows of a dead worker (still `sending`,
        # claim not renewed for the lease) are taken over (their attempt was counted),
        # due rows are claimed fresh and counted. The SET sees each row as it was.
        stale_row = and_(_T.c.status == DeliveryStatus.sending, _T.c.claimed_at < stale)
        due_row = and_(
            _T.c.status.in_((DeliveryStatus.queued, DeliveryStatus.deferred)),
            # A queued row with next_attempt_at is not due before it: a send at
            # the reader's local time (sending/job.py) writes each row's due time.
            or_(_T.c.next_attempt_at.is_(None), _T.c.next_attempt_at <= now),
        )
        was_sending = _T.c.status == DeliveryStatus.sending
        session.execute(
            _T.update()
            .where(*in_range, or_(stale_row, due_row))
            .values(
                status=DeliveryStatus.sending,
                claim=case((was_sending, claim.taken_over), else_=claim.fresh),
                claimed_at=now,
                attempts=_T.c.attempts + case((was_sending, 0), else_=1),
            )
        )
        # The same transaction reads what sending needs: the claim is committed with the
        # rows it returns, and a batch costs one commit less.
        list_id, composed_at = session.execute(
            select(Digest.list_id, Digest.created_at).where(Digest.id == digest_id)
        ).one()
        with_attributes = uses_attributes(session, digest_id, composed_at)
        query = (
            select(
                Delivery.id,
                Delivery.claim,
                Delivery.attempts,
                Subscriber.email,
                Subscriber.name,
                Subscriber.status,
                Subscription.id,
                Subscription.status,
                Delivery.variant,
                # Attributes only for a digest that shows one: the rest read no JSON.
                Subscriber.attributes if with_attributes else literal(None),
            )
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .outerjoin(
                Subscription,
                (Subscription.subscriber_id == Delivery.subscriber_id)
                & (Subscription.list_id == list_id),
            )
            # The claim's marks are the batch's own (random tokens): no digest test needed.
            .where(Delivery.id >= lo, Delivery.id <= hi, Delivery.claim.in_(claim.marks))
            .order_by(Delivery.id)
        )
        return [
            Row(
                id=r[0],
                taken_over=r[1] == claim.taken_over,
                attempts=r[2],
                email=r[3],
                name=r[4] or "",
                subscription_id=r[6],
                eligible=r[3] is not None
                and r[5] == SubscriberStatus.active
                and r[7] == SubscriptionStatus.confirmed,
                variant=r[8],
                attributes=(r[9] or {}) if with_attributes else None,
            )
            for r in session.execute(query)
        ]


def _in_range(digest_id: int, lo: int, hi: int) -> tuple[ColumnElement[bool], ...]:
    """The digest's rows with ids in [lo, hi], found by the primary key.

    The digest is tested as `digest_id + 0`, which no index can answer: a send's
    digest_id is new to the planner's statistics (estimated a few rows), so with a plain
    `digest_id =` it scanned all of the send's entries in ix_deliveries_digest_status
    for every batch (a BitmapAnd with the id range), a cost growing with the list.
    """
    return (
        (_T.c.digest_id + 0) == digest_id,
        _T.c.id >= lo,
        _T.c.id <= hi,
    )


def renew_claim(digest_id: int, lo: int, hi: int, claim: Claim) -> None:
    """A live batch's heartbeat: its rows still `sending` keep their claim fresh
    (claimed_at), found by the primary key (see `_in_range`)."""
    with session_scope() as session:
        session.execute(
            _T.update()
            .where(
                *_in_range(digest_id, lo, hi),
                _T.c.claim.in_(claim.marks),
                _T.c.status == DeliveryStatus.sending,
            )
            .values(claimed_at=utcnow())
        )


_ATTRIBUTE_USE: dict[tuple[str, int, datetime], bool] = {}


def uses_attributes(session: Session, digest_id: int, composed_at: datetime) -> bool:
    """Does the digest (or one of its variants) show a reader attribute? Asked once per
    process and digest as composed (a sending digest's content does not change; the
    database and the composing time tell one digest from another with the same id)."""
    key = (str(session.get_bind().engine.url), digest_id, composed_at)
    found = _ATTRIBUTE_USE.get(key)
    if found is None:
        marker = fields.ATTRIBUTE_PREFIX
        found = bool(
            session.scalar(
                select(Digest.id).where(
                    Digest.id == digest_id,
                    or_(
                        Digest.html.contains(marker, autoescape=True),
                        Digest.text.contains(marker, autoescape=True),
                    ),
                )
            )
            or session.scalar(
                select(DigestVariant.number)
                .where(
                    DigestVariant.digest_id == digest_id,
                    or_(
                        DigestVariant.html.contains(marker, autoescape=True),
                        DigestVariant.text.contains(marker, autoescape=True),
                    ),
                )
                .limit(1)
            )
            is not None
        )
        if len(_ATTRIBUTE_USE) > 64:
            _ATTRIBUTE_USE.clear()
        _ATTRIBUTE_USE[key] = found
    return found


def _params(change: Change) -> dict[str, Any]:
    """The bind parameters of one change in the fold's executemany."""
    return {
        "b_id": change.delivery_id,
        "b_status": change.status.value,
        "b_code": change.code,
        "b_reply": change.reply,
        "b_next": change.next_attempt_at,
        "b_delta": change.attempts_delta,
    }


def _fold(
    settings: Settings,
    template: DigestTemplate,
    digest_id: int,
    ledger: Ledger,
    journal: Journal | None,
    claim: Claim,
    renew: list[int] | None = None,
) -> None:
    """One transaction for everything the batch learnt since the last fold.

    The journal is synced first: every accept below is in the journal before the ledger
    says so. Only rows still under this batch's claim are written.
    """
    if journal is not None:
        try:
            journal.sync()
        except Exception:  # noqa: BLE001 - journal gone (Redis restarted): the ledger is the record
            log.warning("journal unavailable; writing the ledger without it", exc_info=True)
            journal = None
    now = utcnow()
    marks = claim.marks
    with session_scope() as session:
        if ledger.sent:
            message_id = (
                literal(template.message_id_prefix)
                + sql_cast(_T.c.id, String)
                + literal(template.message_id_suffix)
            )
            # One range UPDATE per run of accepts (one for a batch without exceptions),
            # sent together as one executemany.
            session.execute(
                _T.update()
                .where(
                    _T.c.id >= bindparam("b_lo"),
                    _T.c.id <= bindparam("b_hi"),
                    (_T.c.claim == marks[0]) | (_T.c.claim == marks[1]),
                )
                .values(
                    status=DeliveryStatus.sent,
                    smtp_code=250,
                    smtp_reply=None,
                    next_attempt_at=None,
                    message_id=message_id,
                    claim=None,
                    updated_at=now,
                ),
                [{"b_lo": lo, "b_hi": hi} for lo, hi in ledger.sent_ranges()],
            )
        if ledger.other:
            session.execute(
                _T.update()
                .where(
                    _T.c.id == bindparam("b_id"),
                    (_T.c.claim == marks[0]) | (_T.c.claim == marks[1]),
                )
                .values(
                    status=bindparam("b_status"),
                    smtp_code=bindparam("b_code"),
                    smtp_reply=bindparam("b_reply"),
                    next_attempt_at=bindparam("b_next"),
                    attempts=_T.c.attempts + bindparam("b_delta"),
                    claim=None,
                    updated_at=now,
                ),
                [_params(c) for c in ledger.other],
            )
            bounced = [c for c in ledger.other if c.bounce]
            if bounced:
                _record_bounces(session, settings, bounced)
        # Rows still being sent keep their claim fresh: a slow (rate-capped) batch is alive.
        if renew:
            session.execute(
                _T.update()
                .where(
                    _T.c.id.in_(renew),
                    _T.c.claim.in_(marks),
                    _T.c.status == DeliveryStatus.sending,
                )
                .values(claimed_at=now)
            )
        # The send's liveness for recover_stalled (minutes), written at most once a second:
        # every fold of every connection would otherwise lock and rewrite the one digest row.
        session.execute(
            update(Digest)
            .where(
                Digest.id == digest_id,
                or_(Digest.progress_at.is_(None), Digest.progress_at < now - _PROGRESS_EVERY),
            )
            .values(progress_at=now)
        )
    if journal is not None and ledger.sent:
        try:
            journal.forget(ledger.sent)
        except Exception:  # noqa: BLE001 - forgetting is housekeeping only
            log.debug("journal forget failed", exc_info=True)


def _record_bounces(session: Session, settings: Settings, bounced: list[Change]) -> None:
    """A refusal during our SMTP transaction goes through the bounce policy like a DSN
    (newsletter/bounces/handling.py): a 5xx for the address suppresses at once, a policy
    refusal (our IP or content) keeps the reader and is counted per domain."""
    from newsletter.bounces.handling import record_send_refusal

    rows = session.execute(
        select(Delivery.id, Subscriber.email)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_([c.delivery_id for c in bounced]))
    ).all()
    emails: dict[int, str] = {delivery_id: email for delivery_id, email in rows}
    for change in bounced:
        email = emails.get(change.delivery_id, "")
        code = change.code or 550
        record_send_refusal(session, settings, change.delivery_id, email, code, change.reply or "")
