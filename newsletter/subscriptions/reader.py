"""One reader as an operator looks them up: subscriptions with their consent records,
the latest deliveries, the bounces. Everything here is bounded (LIMIT) and on an index
(deliveries and bounce events by subscriber)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import NotFound
from newsletter.models import BounceEvent, Delivery, Digest, MailingList, Subscriber, Subscription

RECENT = 50


@dataclass(frozen=True)
class SubscriptionView:
    list_slug: str
    list_name: str
    status: str
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    consent_at: datetime | None
    consent_ip: str | None
    consent_user_agent: str | None
    consent_source: str
    consent_text_version: str | None


@dataclass(frozen=True)
class DeliveryView:
    send_id: int
    subject: str
    status: str
    smtp_code: int | None
    at: datetime | None


@dataclass(frozen=True)
class BounceView:
    at: datetime
    kind: str
    reason: str
    status_code: str | None
    remote_domain: str | None
    source: str


@dataclass(frozen=True)
class ReaderView:
    id: int
    email: str
    name: str
    status: str
    bounce_score: int
    created_at: datetime
    subscriptions: list[SubscriptionView]
    deliveries: list[DeliveryView]
    bounces: list[BounceView]
    attributes: dict[str, Any] = field(default_factory=dict)
    language: str | None = None
    timezone: str | None = None


def reader_view(session: Session, subscriber_id: int) -> ReaderView:
    reader = session.get(Subscriber, subscriber_id)
    if reader is None:
        raise NotFound("id", f"There is no reader {subscriber_id} (erased, or never here).")
    subs = session.execute(
        select(Subscription, MailingList.slug, MailingList.name)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.subscriber_id == reader.id)
        .order_by(MailingList.slug)
    )
    deliveries = session.execute(
        select(Delivery, Digest.subject)
        .join(Digest, Digest.id == Delivery.digest_id)
        .where(Delivery.subscriber_id == reader.id)
        .order_by(Delivery.id.desc())
        .limit(RECENT)
    )
    bounces = session.scalars(
        select(BounceEvent)
        .where(BounceEvent.subscriber_id == reader.id)
        .order_by(BounceEvent.id.desc())
        .limit(RECENT)
    )
    return ReaderView(
        id=reader.id,
        email=reader.email,
        name=reader.name,
        status=reader.status,
        bounce_score=reader.bounce_score,
        created_at=reader.created_at,
        attributes=dict(reader.attributes or {}),
        language=reader.language,
        timezone=reader.timezone,
        subscriptions=[
            SubscriptionView(
                slug,
                name,
                s.status,
                s.created_at,
                s.confirmed_at,
                s.unsubscribed_at,
                s.consent_at,
                s.consent_ip,
                s.consent_user_agent,
                s.consent_source,
                s.consent_text_version,
            )
            for s, slug, name in subs
        ],
        deliveries=[
            DeliveryView(d.digest_id, subject, d.status, d.smtp_code, d.updated_at)
            for d, subject in deliveries
        ],
        bounces=[
            BounceView(b.created_at, b.kind, b.reason, b.status_code, b.remote_domain, b.source)
            for b in bounces
        ],
    )
