"""Requests nobody confirmed are forgotten once their link has long expired."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Subscriber, Subscription, utcnow
from newsletter.subscriptions.consent import ConsentRecord, subscribe
from newsletter.subscriptions.lists import create_list
from newsletter.subscriptions.maintenance import purge_unconfirmed


def test_stale_unconfirmed_requests_are_purged_and_the_rest_kept(database: str):
    settings = get_settings()
    with session_scope() as session:
        create_list(session, "morning", "Morning")
        for email, confirmed in (
            ("stale@example.org", False),
            ("fresh@example.org", False),
            ("kept@example.org", True),
        ):
            subscribe(
                session,
                settings,
                email=email,
                name="",
                list_slug="morning",
                consent=ConsentRecord(),
                confirmed=confirmed,
            )
    old = utcnow() - timedelta(days=2 * settings.confirm_ttl_days + 1)
    with session_scope() as session:
        session.execute(update(Subscription).values(created_at=old))
        session.execute(update(Subscriber).values(created_at=old))
        session.execute(
            update(Subscription)
            .where(
                Subscription.subscriber_id.in_(
                    select(Subscriber.id).where(Subscriber.email == "fresh@example.org")
                )
            )
            .values(created_at=utcnow())
        )
    with session_scope() as session:
        assert purge_unconfirmed(session, settings) == 1
    with session_scope() as session:
        assert sorted(session.scalars(select(Subscriber.email))) == [
            "fresh@example.org",
            "kept@example.org",
        ]
