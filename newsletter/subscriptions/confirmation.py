"""The double opt-in mail: the only thing an unconfirmed address ever receives."""

from __future__ import annotations

from datetime import UTC, datetime

from babel.dates import format_datetime
from sqlalchemy.orm import Session, joinedload

from newsletter.config import Settings
from newsletter.i18n import choose
from newsletter.mail.message import address
from newsletter.mail.render import render_email
from newsletter.mail.system import Outgoing, system_mail
from newsletter.models import Subscription, SubscriptionStatus
from newsletter.subscriptions.tokens import make_confirm_token


def _when(moment: datetime, language: str | None) -> str:
    """When the request came, written the reader's way ("30 November 2026, 14:08 UTC",
    "30 листопада 2026, 14:08 UTC")."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment, "d MMMM y, HH:mm 'UTC'", tzinfo=UTC, locale=choose(language))


def confirmation_mail(
    session: Session, settings: Settings, subscription_id: int
) -> Outgoing | None:
    """The mail for a pending subscription as it leaves (signed, with the subscription's
    own return path), or None if it is no longer pending."""
    # The reader and the list in the same query: one round trip instead of three.
    sub = session.get(
        Subscription,
        subscription_id,
        options=(joinedload(Subscription.subscriber), joinedload(Subscription.mailing_list)),
    )
    if sub is None or sub.status != SubscriptionStatus.unconfirmed:
        return None
    token = make_confirm_token(settings.secret, sub.id, sub.token_nonce)
    subscriber = sub.subscriber
    context = {
        "name": subscriber.name,
        "email": subscriber.email,
        "list_name": sub.mailing_list.name,
        "confirm_url": f"{settings.base_url}/confirm/{token}",
        "requested_at": _when(sub.consent_at or sub.created_at, subscriber.language),
        "requested_ip": sub.consent_ip,
        "ttl_days": settings.confirm_ttl_days,
        "postal_address": settings.postal_address,
        "preferences_url": None,
    }
    # In the language the reader signed up with (Accept-Language or the page's choice).
    rendered = render_email("confirm", context, language=subscriber.language)
    to = address(subscriber.email, subscriber.name)
    return system_mail(settings, "c", subscription_id, to=to, rendered=rendered)
