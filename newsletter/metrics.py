"""Counts by state for a Prometheus scraper (GET /metrics)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import BounceEvent, Delivery, Subscriber, Subscription


def prometheus_text(session: Session) -> str:
    """Counts by state, for a scraper: subscribers, subscriptions, deliveries, bounce events."""
    gauges = (
        ("newsletter_subscribers", "status", Subscriber.status),
        ("newsletter_subscriptions", "status", Subscription.status),
        ("newsletter_deliveries", "status", Delivery.status),
        ("newsletter_bounce_events", "kind", BounceEvent.kind),
    )
    lines = []
    for name, label, column in gauges:
        lines.append(f"# TYPE {name} gauge")
        for value, n in session.execute(select(column, func.count()).group_by(column)):
            lines.append(f'{name}{{{label}="{value}"}} {n}')
    return "\n".join(lines) + "\n"
