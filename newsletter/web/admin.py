"""Admin API under /api/, behind the bearer token. Each route is a few lines over newsletter/."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel
from sqlalchemy import func, select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.models import BounceEvent, Delivery, Subscriber, Subscription
from newsletter.subscriptions.consent import ConsentRecord, subscribe
from newsletter.subscriptions.lists import create_list, list_records
from newsletter.subscriptions.subscribers import subscriber_records
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


def bad_input(exc: InvalidInput) -> HTTPException:
    return HTTPException(422, [{"field": exc.field, "message": exc.message}])


class ListIn(BaseModel):
    slug: str
    name: str
    schedule: str | None = None
    timezone: str = "UTC"


class SubscriberIn(BaseModel):
    email: str
    list: str
    name: str = ""
    confirmed: bool = False


@router.get("/lists")
def get_lists() -> list[dict[str, Any]]:
    with session_scope() as session:
        return list_records(session)


@router.post("/lists", status_code=201)
def post_list(body: ListIn) -> dict[str, Any]:
    try:
        with session_scope() as session:
            m = create_list(session, body.slug, body.name, body.schedule, body.timezone)
            return {"slug": m.slug, "name": m.name, "schedule": m.schedule, "timezone": m.timezone}
    except InvalidInput as exc:
        raise bad_input(exc) from None


@router.get("/subscribers")
def get_subscribers(list: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
    try:
        with session_scope() as session:
            return [*subscriber_records(session, list)]
    except InvalidInput as exc:
        raise bad_input(exc) from None


@router.post("/subscribers", status_code=201)
def post_subscriber(body: SubscriberIn) -> dict[str, Any]:
    from workers.tasks import send_confirmation

    settings = get_settings()
    try:
        with session_scope() as session:
            result = subscribe(
                session,
                settings,
                email=body.email,
                name=body.name,
                list_slug=body.list,
                consent=ConsentRecord(source="admin"),
                confirmed=body.confirmed,
            )
    except InvalidInput as exc:
        raise bad_input(exc) from None
    if result.send_confirmation and result.subscription_id is not None:
        send_confirmation.delay(result.subscription_id)
    return {"outcome": result.outcome.value}


def prometheus_metrics() -> str:
    """Counts by state, for a scraper: subscribers, subscriptions, deliveries, bounce events."""
    gauges = (
        ("newsletter_subscribers", "status", Subscriber.status),
        ("newsletter_subscriptions", "status", Subscription.status),
        ("newsletter_deliveries", "status", Delivery.status),
        ("newsletter_bounce_events", "kind", BounceEvent.kind),
    )
    lines = []
    with session_scope() as session:
        for name, label, column in gauges:
            lines.append(f"# TYPE {name} gauge")
            for value, n in session.execute(select(column, func.count()).group_by(column)):
                lines.append(f'{name}{{{label}="{value}"}} {n}')
    return "\n".join(lines) + "\n"
