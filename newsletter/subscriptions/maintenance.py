"""Housekeeping beat runs: data the service promised not to keep."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import Subscriber, Subscription, SubscriptionStatus, utcnow


def purge_unconfirmed(session: Session, settings: Settings) -> int:
    """Forget requests nobody confirmed, once their link has long expired (twice its TTL).

    The confirmation mail says "you will not be subscribed"; this keeps that promise for
    the stored address too. Subscribers left with no subscription at all go with them.
    """
    cutoff = utcnow() - timedelta(days=2 * settings.confirm_ttl_days)
    stale = cast(
        CursorResult[Any],
        session.execute(
            delete(Subscription)
            .where(Subscription.status == SubscriptionStatus.unconfirmed)
            .where(Subscription.created_at < cutoff)
            .where(Subscription.confirmed_at.is_(None)),
        ),
    ).rowcount
    orphans = select(Subscription.id).where(Subscription.subscriber_id == Subscriber.id).exists()
    session.execute(delete(Subscriber).where(~orphans).where(Subscriber.created_at < cutoff))
    return int(stale or 0)
