"""Clicks and opens as they arrive: where a tracked link leads, and what it counts.

The redirect (web/tracking.py) first resolves a link (`resolve_click`, one read), answers
with the redirect, and records separately (`record_click`, its own transaction): a
failure to record is logged and never costs the reader their page.

Privacy: a row holds the digest, the link and story, the subscriber and the machine
verdict; never an address or a user agent (engagement/machine.py looks at them and
forgets them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.engagement import machine
from newsletter.models import (
    Delivery,
    Digest,
    DigestLink,
    Engagement,
    MailingList,
    Subscriber,
    Subscription,
    utcnow,
)

CLICK = "click"
OPEN = "open"


@dataclass(frozen=True)
class Click:
    """A verified tracked link: where it leads, and whose click it is (subscriber None:
    a test send or an erased reader, redirected and never counted)."""

    url: str
    digest_id: int
    number: int
    story_id: int | None
    list_id: int
    subscriber_id: int | None
    delivered_at: datetime | None


def resolve_click(
    session: Session, settings: Settings, delivery_id: int, digest_id: int, number: int
) -> Done[Click | None]:
    """The link `number` of digest `digest_id` for delivery `delivery_id` (0: a test
    send), or None when the link is unknown or the delivery is of another digest."""
    row = session.execute(
        select(DigestLink.url, DigestLink.story_id, Digest.list_id)
        .join(Digest, Digest.id == DigestLink.digest_id)
        .where(DigestLink.digest_id == digest_id, DigestLink.number == number)
    ).first()
    if row is None:
        return Done(None)
    url, story_id, list_id = row
    subscriber_id: int | None = None
    delivered_at: datetime | None = None
    if delivery_id:
        delivery = session.execute(
            select(Delivery.subscriber_id, Delivery.updated_at).where(
                Delivery.id == delivery_id, Delivery.digest_id == digest_id
            )
        ).first()
        if delivery is None:
            return Done(None)
        subscriber_id, delivered_at = delivery
    return Done(Click(url, digest_id, number, story_id, list_id, subscriber_id, delivered_at))


def _last_person_click(session: Session, subscriber_id: int) -> datetime | None:
    return session.scalar(
        select(func.max(Engagement.at)).where(
            Engagement.subscriber_id == subscriber_id,
            Engagement.kind == CLICK,
            Engagement.machine.is_(False),
        )
    )


def record_click(
    session: Session,
    settings: Settings,
    click: Click,
    seen: machine.Request,
) -> Done[str | None]:
    """Count a click; returns the machine rule that matched, None for a person.

    A person's click sets Subscriber.last_click_at and answers a pending sunset
    question (Subscription.sunset_asked_at cleared). A burst (several links of one
    message within BURST_SECONDS) marks this click and the burst's earlier ones machine
    and sets last_click_at back to the last click that was a person's.
    """
    if click.subscriber_id is None:
        return Done(None)
    now = seen.at
    rule = machine.verdict(seen)
    if rule is None:
        burst = list(
            session.scalars(
                select(Engagement.id).where(
                    Engagement.subscriber_id == click.subscriber_id,
                    Engagement.digest_id == click.digest_id,
                    Engagement.kind == CLICK,
                    Engagement.link != click.number,
                    Engagement.at >= now - timedelta(seconds=machine.BURST_SECONDS),
                )
            )
        )
        if burst:
            rule = "burst"
            session.execute(update(Engagement).where(Engagement.id.in_(burst)).values(machine=True))
            session.flush()
            last = _last_person_click(session, click.subscriber_id)
            session.execute(
                update(Subscriber)
                .where(Subscriber.id == click.subscriber_id)
                .values(last_click_at=last)
            )
    session.add(
        Engagement(
            digest_id=click.digest_id,
            kind=CLICK,
            link=click.number,
            story_id=click.story_id,
            subscriber_id=click.subscriber_id,
            machine=rule is not None,
            at=now,
        )
    )
    if rule is None:
        session.execute(
            update(Subscriber).where(Subscriber.id == click.subscriber_id).values(last_click_at=now)
        )
        session.execute(
            update(Subscription)
            .where(
                Subscription.subscriber_id == click.subscriber_id,
                Subscription.list_id == click.list_id,
                Subscription.sunset_asked_at.is_not(None),
            )
            .values(sunset_asked_at=None)
        )
    return Done(rule)


def record_open(
    session: Session, settings: Settings, delivery_id: int, seen: machine.Request
) -> Done[bool]:
    """Count an open of delivery `delivery_id` when its list has `track_opens` on;
    returns whether one was counted. Opens say nothing about interest for sunset (a
    privacy proxy opens everything), so they change nothing else."""
    row = session.execute(
        select(Delivery.digest_id, Delivery.subscriber_id, MailingList.track_opens)
        .join(Digest, Digest.id == Delivery.digest_id)
        .join(MailingList, MailingList.id == Digest.list_id)
        .where(Delivery.id == delivery_id)
    ).first()
    if row is None or not row.track_opens or row.subscriber_id is None:
        return Done(False)
    session.add(
        Engagement(
            digest_id=row.digest_id,
            kind=OPEN,
            subscriber_id=row.subscriber_id,
            machine=machine.verdict(seen) is not None,
            at=seen.at or utcnow(),
        )
    )
    return Done(True)
