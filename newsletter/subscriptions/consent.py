"""Subscribe, confirm, unsubscribe: the consent rules, independent of web and queue.

Callers get back what to do next (e.g. "send the confirmation mail") and do it after
the transaction commits; this module never sends or enqueues anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Suppression,
    utcnow,
)
from newsletter.subscriptions.addresses import clean_name, email_hash, normalise_email
from newsletter.subscriptions.lists import find_list
from newsletter.subscriptions.suppression import is_suppressed
from newsletter.subscriptions.tokens import (
    ConfirmClaim,
    TokenInvalid,
    read_confirm_token,
    read_unsubscribe_token,
)


class Outcome(StrEnum):
    pending = "pending"  # a confirmation mail goes out
    already_pending = "already_pending"  # one went out recently: nothing new
    already_confirmed = "already_confirmed"
    confirmed = "confirmed"  # added as confirmed by an operator or import
    suppressed = "suppressed"  # an import or admin add refused a suppressed address
    ignored = "ignored"  # honeypot and the like


@dataclass(frozen=True)
class SubscribeResult:
    outcome: Outcome
    subscription_id: int | None = None

    @property
    def send_confirmation(self) -> bool:
        return self.outcome is Outcome.pending


@dataclass(frozen=True)
class ConsentRecord:
    ip: str | None = None
    user_agent: str | None = None
    source: str = "form"
    text_version: str | None = None


def subscribe(
    session: Session,
    settings: Settings,
    *,
    email: str,
    name: str | None,
    list_slug: str | None,
    consent: ConsentRecord,
    confirmed: bool = False,
    now: datetime | None = None,
) -> SubscribeResult:
    """Record a wish to subscribe. Validation errors raise InvalidInput before any write.

    The outcome for a confirmed address is the same neutral page as for a new one,
    so the form cannot be used to learn who is subscribed.
    """
    now = now or utcnow()
    address = normalise_email(email, check_deliverability=settings.check_deliverability)
    display = clean_name(name)
    mlist = find_list(session, list_slug)
    # Operators and imports must not bring back someone who erased themselves, bounced
    # or complained; a reader's own double opt-in may (confirming lifts it, see confirm()).
    operator = confirmed or consent.source in ("import", "admin")
    if operator and is_suppressed(session, settings, address):
        return SubscribeResult(Outcome.suppressed)

    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        subscriber = Subscriber(email=address, name=display)
        session.add(subscriber)
        session.flush()
    elif display and not subscriber.name:
        subscriber.name = display

    sub = session.scalar(
        select(Subscription).where(
            Subscription.list_id == mlist.id, Subscription.subscriber_id == subscriber.id
        )
    )
    if sub is not None and sub.status == SubscriptionStatus.confirmed:
        return SubscribeResult(Outcome.already_confirmed, sub.id)
    if sub is None:
        sub = Subscription(list_id=mlist.id, subscriber_id=subscriber.id, token_nonce=0)
        session.add(sub)
    elif sub.status == SubscriptionStatus.unconfirmed and not confirmed:
        window = timedelta(minutes=settings.confirm_resend_minutes)
        if sub.confirm_sent_at is not None and now - sub.confirm_sent_at < window:
            return SubscribeResult(Outcome.already_pending, sub.id)

    _record_consent(sub, consent, now)
    if confirmed:
        sub.status = SubscriptionStatus.confirmed
        sub.confirmed_at = now
        sub.unsubscribed_at = None
        session.flush()
        return SubscribeResult(Outcome.confirmed, sub.id)
    if sub.status == SubscriptionStatus.unsubscribed:
        sub.unsubscribed_at = None
    sub.status = SubscriptionStatus.unconfirmed
    sub.token_nonce = (sub.token_nonce or 0) + 1  # older confirm links stop working
    sub.confirm_sent_at = now
    session.flush()
    return SubscribeResult(Outcome.pending, sub.id)


def _record_consent(sub: Subscription, consent: ConsentRecord, now: datetime) -> None:
    sub.consent_at = now
    sub.consent_ip = consent.ip
    sub.consent_user_agent = (consent.user_agent or "")[:512] or None
    sub.consent_source = consent.source
    sub.consent_text_version = consent.text_version


class ConfirmState(StrEnum):
    confirmed = "confirmed"
    already = "already"


def _claimed_subscription(session: Session, claim: ConfirmClaim) -> Subscription:
    sub = session.get(Subscription, claim.subscription_id)
    if sub is None or sub.token_nonce != claim.nonce:
        raise TokenInvalid()
    return sub


def check_confirm(session: Session, settings: Settings, token: str) -> Subscription:
    """The subscription a confirm link is for; raises TokenInvalid / TokenExpired."""
    claim = read_confirm_token(settings.secret, token, settings.confirm_ttl_days * 86400)
    sub = _claimed_subscription(session, claim)
    if sub.status == SubscriptionStatus.unsubscribed:
        raise TokenInvalid()
    return sub


def confirm(session: Session, settings: Settings, token: str) -> tuple[ConfirmState, Subscription]:
    sub = check_confirm(session, settings, token)
    if sub.status == SubscriptionStatus.confirmed:
        return ConfirmState.already, sub
    now = utcnow()
    sub.status = SubscriptionStatus.confirmed
    sub.confirmed_at = now
    subscriber = sub.subscriber
    if subscriber.status != SubscriberStatus.active:
        # The reader proved the mailbox works and asked again: lift the old suppression.
        subscriber.status = SubscriberStatus.active
        subscriber.bounce_score = 0
    session.execute(
        delete(Suppression).where(
            Suppression.email_hash == email_hash(subscriber.email, settings.secret)
        )
    )
    return ConfirmState.confirmed, sub


def renew_confirmation(
    session: Session, settings: Settings, claim: ConfirmClaim
) -> SubscribeResult:
    """An expired link's page offers a new mail; same resend limit as the form."""
    sub = _claimed_subscription(session, claim)
    if sub.status != SubscriptionStatus.unconfirmed:
        return SubscribeResult(Outcome.already_confirmed, sub.id)
    now = utcnow()
    window = timedelta(minutes=settings.confirm_resend_minutes)
    if sub.confirm_sent_at is not None and now - sub.confirm_sent_at < window:
        return SubscribeResult(Outcome.already_pending, sub.id)
    sub.confirm_sent_at = now
    return SubscribeResult(Outcome.pending, sub.id)


def unsubscription(session: Session, settings: Settings, token: str) -> Subscription:
    sub = session.get(Subscription, read_unsubscribe_token(settings.secret, token))
    if sub is None:
        raise TokenInvalid()
    return sub


def unsubscribe(session: Session, settings: Settings, token: str) -> Subscription:
    """Immediate and idempotent; coming back needs a new confirmation."""
    sub = unsubscription(session, settings, token)
    if sub.status != SubscriptionStatus.unsubscribed:
        sub.status = SubscriptionStatus.unsubscribed
        sub.unsubscribed_at = utcnow()
    return sub
