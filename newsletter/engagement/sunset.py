"""Sunset: readers who stopped reading are asked once, then let go.

A list with `sunset_after` N (and click tracking on) asks a confirmed reader "Still want
<list>?" when they received the list's last N digests of their frequency (sent
deliveries) and made no person-click on the list since the first of them (machine clicks
do not count: a scanner is not a reader). A click (engagement/record.py) or the page's
"Keep me subscribed" (`keep`) answers the question; a reader asked more than
SUNSET_GRACE_DAYS ago who did not answer is unsubscribed through `consent.leave(sub,
"sunset")`, the one place a subscription ends.

Click tracking is what tells interest apart: a list with `sunset_after` but tracking off
has no click data, would ask and then unsubscribe everyone, so it is skipped (and
logged) here whatever its settings say.

A "keep" is stored as an Engagement of kind "keep" (never a click in any count): the
reader's answer starts a new round of N digests, and no column was needed for it.

Beat runs `plan` and then `ask` per subscription (workers/tasks.py): `ask` marks the
question and builds the mail in the transaction that sends it, so a failed send leaves
the reader unasked, and two sweeps at once cannot ask twice (the mark is a conditional
UPDATE on sunset_asked_at IS NULL).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Exists, exists, func, or_, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.mail.message import address
from newsletter.mail.render import render_email
from newsletter.mail.system import AUTO, Outgoing, system_mail
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Engagement,
    MailingList,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from newsletter.subscriptions import consent
from newsletter.subscriptions.tokens import PreferencesSigner, UnsubscribeSigner

log = logging.getLogger(__name__)

KEEP = "keep"
REASON = "sunset"


@dataclass
class Plan:
    """Subscriptions to ask now, and subscriptions whose grace ran out."""

    ask: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)
    skipped_lists: list[str] = field(default_factory=list)  # sunset_after without tracking


def _last_digests(session: Session, list_id: int, frequency: str | None, n: int) -> list[Digest]:
    wanted = (
        Digest.frequency.is_(None)
        if frequency in (None, "every")
        else (Digest.frequency == frequency)
    )
    return list(
        session.scalars(
            select(Digest)
            .where(Digest.list_id == list_id, Digest.status == DigestStatus.sent, wanted)
            .order_by(Digest.started_at.desc().nulls_last(), Digest.id.desc())
            .limit(n)
        )
    )


def _answered_since(list_id: int, since: datetime) -> Exists:
    """A person's click (or a "keep") on any digest of the list at or after `since`."""
    return exists().where(
        Engagement.subscriber_id == Subscription.subscriber_id,
        Engagement.machine.is_(False),
        Engagement.kind.in_(("click", KEEP)),
        Engagement.at >= since,
        Engagement.digest_id.in_(select(Digest.id).where(Digest.list_id == list_id)),
    )


def plan(session: Session, settings: Settings, now: datetime | None = None) -> Plan:
    now = now or utcnow()
    out = Plan()
    grace = now - timedelta(days=settings.sunset_grace_days)
    lists = session.scalars(select(MailingList).where(MailingList.sunset_after.is_not(None)))
    for mlist in lists:
        n = mlist.sunset_after or 0
        if n <= 0:
            continue
        if not mlist.track_clicks:
            log.warning(
                "list %s: sunset_after %d ignored: click tracking is off, so there is no "
                "click to tell a reader from one who stopped reading",
                mlist.slug,
                n,
            )
            out.skipped_lists.append(mlist.slug)
            continue
        # Grace over: asked after their (latest) confirmation and did not answer.
        out.end.extend(
            session.scalars(
                select(Subscription.id).where(
                    Subscription.list_id == mlist.id,
                    Subscription.status == SubscriptionStatus.confirmed,
                    Subscription.sunset_asked_at.is_not(None),
                    Subscription.sunset_asked_at <= grace,
                    or_(
                        Subscription.confirmed_at.is_(None),
                        Subscription.sunset_asked_at >= Subscription.confirmed_at,
                    ),
                )
            )
        )
        for frequency in ("every", "weekly"):
            digests = _last_digests(session, mlist.id, frequency, n)
            if len(digests) < n:
                continue
            first = min((d.started_at or d.created_at) for d in digests)
            ids = [d.id for d in digests]
            received = (
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.subscriber_id == Subscription.subscriber_id,
                    Delivery.digest_id.in_(ids),
                    Delivery.status == DeliveryStatus.sent,
                )
                .scalar_subquery()
            )
            out.ask.extend(
                session.scalars(
                    select(Subscription.id).where(
                        Subscription.list_id == mlist.id,
                        Subscription.status == SubscriptionStatus.confirmed,
                        Subscription.frequency == frequency,
                        Subscription.sunset_asked_at.is_(None),
                        received == n,
                        ~_answered_since(mlist.id, first),
                    )
                )
            )
    return out


def question_context(settings: Settings, sub: Subscription) -> dict[str, object]:
    preferences = PreferencesSigner(settings.secret)(sub.id)
    return {
        "name": sub.subscriber.name,
        "email": sub.subscriber.email,
        "list_name": sub.mailing_list.name,
        "keep_url": f"{settings.base_url}/sunset/{preferences}",
        "preferences_url": f"{settings.base_url}/preferences/{preferences}",
        "unsubscribe_url": (
            f"{settings.base_url}/unsubscribe/{UnsubscribeSigner(settings.secret)(sub.id)}"
        ),
        "digests": sub.mailing_list.sunset_after,
        "grace_days": settings.sunset_grace_days,
        "postal_address": settings.postal_address,
    }


def ask(
    session: Session, settings: Settings, subscription_id: int, now: datetime | None = None
) -> Outgoing | None:
    """Mark the question asked and return its mail, or None when the subscription is no
    longer one to ask (left, answered, or asked by another sweep meanwhile). The caller
    sends it before committing: a failed send rolls the mark back."""
    now = now or utcnow()
    marked = session.execute(
        update(Subscription)
        .where(
            Subscription.id == subscription_id,
            Subscription.status == SubscriptionStatus.confirmed,
            Subscription.sunset_asked_at.is_(None),
        )
        .values(sunset_asked_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(marked, "rowcount", 0) != 1:
        return None
    sub = session.get(Subscription, subscription_id)
    assert sub is not None
    context = question_context(settings, sub)
    rendered = render_email("sunset", context, language=sub.subscriber.language)
    unsubscribe = str(context["unsubscribe_url"])
    # VERP kind "c": a bounce of it is counted against the subscription, never acted on.
    return system_mail(
        settings,
        "c",
        sub.id,
        to=address(sub.subscriber.email, sub.subscriber.name),
        rendered=rendered,
        headers={
            **AUTO,
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def end(
    session: Session, settings: Settings, subscription_id: int, now: datetime | None = None
) -> bool:
    """Unsubscribe a reader who did not answer within the grace (checked again here)."""
    now = now or utcnow()
    sub = session.get(Subscription, subscription_id)
    if (
        sub is None
        or sub.status != SubscriptionStatus.confirmed
        or sub.sunset_asked_at is None
        or sub.sunset_asked_at > now - timedelta(days=settings.sunset_grace_days)
    ):
        return False
    left = consent.leave(sub, REASON)
    sub.sunset_asked_at = None  # a later re-subscription starts afresh
    return left


@dataclass(frozen=True)
class KeepView:
    list_name: str
    email: str
    subscribed: bool
    language: str | None = None


def keep_view(session: Session, settings: Settings, subscription_id: int) -> Done[KeepView | None]:
    sub = session.get(Subscription, subscription_id)
    if sub is None:
        return Done(None)
    return Done(
        KeepView(
            sub.mailing_list.name,
            sub.subscriber.email,
            sub.status == SubscriptionStatus.confirmed,
            sub.subscriber.language,
        )
    )


def keep(
    session: Session, settings: Settings, subscription_id: int, now: datetime | None = None
) -> Done[KeepView | None]:
    """The reader's "Keep me subscribed": answers the question and starts a new round of
    N digests. A subscription that ended stays ended (only the reader's own sign-up
    brings it back); None for an unknown one."""
    now = now or utcnow()
    sub = session.get(Subscription, subscription_id)
    if sub is None:
        return Done(None)
    view = KeepView(
        sub.mailing_list.name,
        sub.subscriber.email,
        sub.status == SubscriptionStatus.confirmed,
        sub.subscriber.language,
    )
    if not view.subscribed:
        return Done(view)
    sub.sunset_asked_at = None
    latest = session.scalar(
        select(Digest.id)
        .where(Digest.list_id == sub.list_id, Digest.status == DigestStatus.sent)
        .order_by(Digest.id.desc())
        .limit(1)
    )
    if latest is not None:
        session.add(
            Engagement(
                digest_id=latest,
                kind=KEEP,
                subscriber_id=sub.subscriber_id,
                machine=False,
                at=now,
            )
        )
    return Done(view)


__all__ = ["KEEP", "REASON", "KeepView", "Plan", "ask", "end", "keep", "keep_view", "plan"]
