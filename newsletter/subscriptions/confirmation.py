"""The double opt-in mail: the only thing an unconfirmed address ever receives."""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.mail.message import address, build_message
from newsletter.mail.render import render_email
from newsletter.mail.system import Outgoing, prepare
from newsletter.models import Subscription, SubscriptionStatus
from newsletter.subscriptions.tokens import make_confirm_token


def confirmation_email(
    session: Session, settings: Settings, subscription_id: int
) -> EmailMessage | None:
    """The mail for a pending subscription, or None if it is no longer pending."""
    sub = session.get(Subscription, subscription_id)
    if sub is None or sub.status != SubscriptionStatus.unconfirmed:
        return None
    token = make_confirm_token(settings.secret, sub.id, sub.token_nonce)
    subscriber = sub.subscriber
    context = {
        "name": subscriber.name,
        "email": subscriber.email,
        "list_name": sub.mailing_list.name,
        "confirm_url": f"{settings.base_url}/confirm/{token}",
        "requested_at": (sub.consent_at or sub.created_at).strftime("%d %B %Y at %H:%M UTC"),
        "requested_ip": sub.consent_ip,
        "ttl_days": settings.confirm_ttl_days,
        "postal_address": settings.postal_address,
        "preferences_url": None,
    }
    # In the language the reader signed up with (Accept-Language or the page's choice).
    rendered = render_email("confirm", context, language=subscriber.language)
    return build_message(
        sender=settings.sender,
        to=address(subscriber.email, subscriber.name),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        headers={"Auto-Submitted": "auto-generated"},
    )


def confirmation_mail(
    session: Session, settings: Settings, subscription_id: int
) -> Outgoing | None:
    """The confirmation as it leaves: signed, with the subscription's own return path."""
    message = confirmation_email(session, settings, subscription_id)
    return None if message is None else prepare(message, settings, "c", subscription_id)
