"""Subscribe, confirm, unsubscribe: the consent rules, independent of web and queue.

Callers get back what to do next (e.g. "send the confirmation mail") and do it after
the transaction commits; this module never sends or enqueues anything itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Insert, Row, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, object_session

from newsletter.config import Settings
from newsletter.errors import InvalidInput, NotFound
from newsletter.i18n import tr
from newsletter.models import (
    MailingList,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Suppression,
    utcnow,
)
from newsletter.subscriptions.addresses import clean_name, email_hash, normalise_email
from newsletter.subscriptions.attributes import clean as clean_attributes
from newsletter.subscriptions.attributes import merge as merge_attributes
from newsletter.subscriptions.lists import SLUG
from newsletter.subscriptions.tokens import (
    ConfirmClaim,
    TokenInvalid,
    read_confirm_token,
    read_unsubscribe_token,
)
from newsletter.webhooks.events import emit

# Consent sources that are an operator acting, not the reader asking (see subscribe()).
OPERATOR_SOURCES = ("import", "admin")
# The public sign-up (the form and its JSON variant): attributes only from the list's
# own form fields.
PUBLIC_SOURCES = ("form", "api")


# The public sign-up's statements, built once: building one per request (and its cache
# key) cost about as much CPU as running it.
_LIST = select(MailingList.id, MailingList.slug, MailingList.form_fields).where(
    MailingList.slug == bindparam("slug")
)
# The address's reader and its subscription to the list, if any (one row at most).
_KNOWN = (
    select(Subscriber.id, Subscription.id)
    .outerjoin(
        Subscription,
        (Subscription.subscriber_id == Subscriber.id)
        & (Subscription.list_id == bindparam("list_id")),
    )
    .where(Subscriber.email == bindparam("email"))
)
_NEW_SUBSCRIBER = insert(Subscriber)
_NEW_SUBSCRIPTION = insert(Subscription)


class Outcome(StrEnum):
    pending = "pending"  # a confirmation mail goes out
    already_pending = "already_pending"  # one went out recently: nothing new
    already_confirmed = "already_confirmed"
    confirmed = "confirmed"  # added as confirmed by an operator or import
    suppressed = "suppressed"  # an import or admin add refused a suppressed address
    unsubscribed = "unsubscribed"  # an import or admin add refused: the reader left this list
    ignored = "ignored"  # honeypot and the like


class Refusal(StrEnum):
    """Why an operator (import, admin add) may not put a reader on a list: the reader's
    own decision, or their mailbox's, stands until the reader asks again themselves."""

    unsubscribed = "unsubscribed"  # left this list
    complained = "complained"  # marked our mail as spam
    bounced = "bounced"  # the mailbox refused our mail (hard bounce, or soft ones in a row)
    erased = "erased"  # asked for their data to be erased
    suppressed = "suppressed"  # on the suppression list for another reason


# Suppression.reason (written by erase and the bounce policy) -> what the operator is told.
_SUPPRESSION_REFUSAL = {
    "erased": Refusal.erased,
    "complaint": Refusal.complained,
    "hard-bounce": Refusal.bounced,
    "soft-bounce-limit": Refusal.bounced,
}
_STATUS_REFUSAL = {
    SubscriberStatus.complained: Refusal.complained,
    SubscriberStatus.bounced: Refusal.bounced,
    SubscriberStatus.suppressed: Refusal.suppressed,
}


@dataclass(frozen=True)
class SubscribeResult:
    outcome: Outcome
    subscription_id: int | None = None
    refusal: Refusal | None = None  # set when an operator's add or import was refused

    @property
    def send_confirmation(self) -> bool:
        return self.outcome is Outcome.pending

    @property
    def refused(self) -> bool:
        return self.refusal is not None


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
    attributes: Mapping[str, Any] | None = None,
    language: str | None = None,
    timezone: str | None = None,
) -> SubscribeResult:
    """Record a wish to subscribe. Validation errors raise InvalidInput before any write.

    The outcome for a confirmed address is the same neutral page as for a new one,
    so the form cannot be used to learn who is subscribed. `attributes`, `language` and
    `timezone` describe a new reader; for a known one the form only fills in what is
    missing (anyone can type any address into it), while an operator (import, admin)
    updates the attributes it gives.
    """
    now = now or utcnow()
    address = normalise_email(email, check_deliverability=settings.check_deliverability)
    display = clean_name(name)
    extra = clean_attributes(attributes)
    language = _language(settings, language)
    timezone = _timezone(timezone)
    mlist = _list_row(session, list_slug)
    if consent.source in PUBLIC_SOURCES:
        extra = _form_fields(mlist.form_fields or [], extra, language)
    operator = confirmed or consent.source in OPERATOR_SOURCES
    conn = session.connection()
    known = conn.execute(_KNOWN, {"email": address, "list_id": mlist.id}).first()
    if known is None and not operator:
        # A new reader on the public form, the common case: two plain INSERTs instead of
        # loading and flushing ORM objects (the front door's CPU per sign-up). The rules are
        # the ones below for a new address: pending, nonce 1, consent recorded.
        reader = {
            "email": address,
            "name": display,
            "attributes": extra,
            "language": language,
            "timezone": timezone,
        }
        subscriber_id = _new_id(conn, _NEW_SUBSCRIBER, reader)
        status = SubscriptionStatus.unconfirmed.value
        subscription = {
            "list_id": mlist.id,
            "subscriber_id": subscriber_id,
            "status": status,
            "token_nonce": 1,
            "confirm_sent_at": now,
            **_consent_values(consent, now),
        }
        sub_id = _new_id(conn, _NEW_SUBSCRIPTION, subscription)
        _emit(session, "subscribed", status, None, address, mlist.slug)
        return SubscribeResult(Outcome.pending, sub_id)
    subscriber = session.get(Subscriber, known[0]) if known is not None else None
    sub = session.get(Subscription, known[1]) if known is not None and known[1] else None
    # Operators and imports never override the reader's own unsubscribe, complaint or
    # erasure, nor a mailbox that bounced: refused before anything is written. Only the
    # reader's own double opt-in brings them back (confirming lifts it, see confirm()).
    if operator:
        refusal = operator_refusal(session, settings, address, subscriber, sub)
        if refusal is not None:
            outcome = (
                Outcome.unsubscribed if refusal is Refusal.unsubscribed else Outcome.suppressed
            )
            return SubscribeResult(outcome, sub.id if sub is not None else None, refusal)

    if subscriber is None:
        subscriber = Subscriber(
            email=address, name=display, attributes=extra, language=language, timezone=timezone
        )
        session.add(subscriber)
        session.flush()
    else:
        if display and not subscriber.name:
            subscriber.name = display
        _describe(subscriber, extra, language, timezone, overwrite=operator)
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
        sub.unsubscribe_reason = None
        session.flush()
        _emit_subscription(session, "subscribed", sub, address, mlist.slug)
        _emit_subscription(session, "confirmed", sub, address, mlist.slug)
        return SubscribeResult(Outcome.confirmed, sub.id)
    # A reader who left and asks again stays "left" (unsubscribed_at) until they confirm:
    # an operator cannot turn the pending request into a subscription for them.
    sub.status = SubscriptionStatus.unconfirmed
    sub.token_nonce = (sub.token_nonce or 0) + 1  # older confirm links stop working
    sub.confirm_sent_at = now
    session.flush()
    _emit_subscription(session, "subscribed", sub, address, mlist.slug)
    return SubscribeResult(Outcome.pending, sub.id)


def _form_fields(
    fields: list[dict[str, Any]], extra: dict[str, Any], language: str | None
) -> dict[str, Any]:
    """What a public sign-up may say of a reader: only the list's own form fields
    (MailingList.form_fields), each required one filled in. InvalidInput names the field
    (the form shows the message beside it) before anything is written."""
    known = {str(f["name"]): f for f in fields}
    unknown = sorted(set(extra) - set(known))
    if unknown:
        raise InvalidInput(
            "attributes", tr(language, "%(name)s is not a field of this form.", name=unknown[0])
        )
    for name, field in known.items():
        value = extra.get(name)
        if field.get("required") and (value is None or value == ""):
            label = str(field.get("label") or name)
            raise InvalidInput(name, tr(language, "Please fill in: %(label)s.", label=label))
    return {k: v for k, v in extra.items() if v is not None and v != ""}


def _language(settings: Settings, language: str | None) -> str | None:
    if not language:
        return None
    code = language.strip().lower()
    if code not in settings.language_codes:
        raise InvalidInput(
            "language", f"{language!r} is not one of {', '.join(settings.language_codes)}."
        )
    return code


def _timezone(timezone: str | None) -> str | None:
    if not timezone:
        return None
    try:
        ZoneInfo(timezone.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"{timezone!r} is not a known time zone.") from None
    return timezone.strip()


def _describe(
    subscriber: Subscriber,
    extra: dict[str, Any],
    language: str | None,
    timezone: str | None,
    *,
    overwrite: bool,
) -> None:
    """What a new request says of a known reader: an operator's word replaces what is
    stored; the public form's only fills the gaps."""
    if extra:
        current = dict(subscriber.attributes or {})
        if overwrite:
            subscriber.attributes = merge_attributes(current, extra)
        else:
            subscriber.attributes = {**extra, **current}
    if language and (overwrite or not subscriber.language):
        subscriber.language = language
    if timezone and (overwrite or not subscriber.timezone):
        subscriber.timezone = timezone


def operator_refusal(
    session: Session,
    settings: Settings,
    address: str,
    subscriber: Subscriber | None,
    sub: Subscription | None,
) -> Refusal | None:
    """Why an operator may not (re)subscribe this address to this list, if they may not.

    The suppression list (a keyed hash, so it outlives an erasure) and the subscriber's
    status speak for the address on every list; an unsubscribe for the one list it was
    made on.
    """
    suppression = session.scalar(
        select(Suppression.reason).where(
            Suppression.email_hash == email_hash(address, settings.secret)
        )
    )
    if suppression is not None:
        return _SUPPRESSION_REFUSAL.get(suppression, Refusal.suppressed)
    if subscriber is not None:
        try:
            status = SubscriberStatus(subscriber.status)
        except ValueError:
            status = SubscriberStatus.suppressed
        if status in _STATUS_REFUSAL:
            return _STATUS_REFUSAL[status]
    if sub is not None and (
        sub.status == SubscriptionStatus.unsubscribed
        or (sub.status == SubscriptionStatus.unconfirmed and sub.unsubscribed_at is not None)
    ):
        return Refusal.unsubscribed
    return None


def _consent_values(consent: ConsentRecord, now: datetime) -> dict[str, Any]:
    """The subscription's columns that record who asked, when, from where, to what text."""
    return {
        "consent_at": now,
        "consent_ip": consent.ip,
        "consent_user_agent": (consent.user_agent or "")[:512] or None,
        "consent_source": consent.source,
        "consent_text_version": consent.text_version,
    }


def _record_consent(sub: Subscription, consent: ConsentRecord, now: datetime) -> None:
    for column, value in _consent_values(consent, now).items():
        setattr(sub, column, value)


def _new_id(conn: Connection, statement: Insert, values: dict[str, Any]) -> int:
    key = conn.execute(statement, values).inserted_primary_key
    assert key is not None  # an INSERT of one row always has one
    return int(key[0])


def _list_row(session: Session, slug: str | None) -> Row[Any]:
    """The list asked for (id, slug, form_fields) as find_list() finds it, with its
    errors, read as one row instead of an ORM object."""
    slug = (slug or "").strip()
    if not slug:
        raise InvalidInput("list", "Please choose a newsletter.")
    # A name no list can have (a NUL byte, say) is not found, without asking the database.
    found = None
    if SLUG.match(slug):
        found = session.connection().execute(_LIST, {"slug": slug}).first()
    if found is None:
        raise NotFound("list", f"There is no newsletter called {slug!r}.")
    return found


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
    # Claimed by a conditional UPDATE: of two clicks at once only one changes the row
    # (the other waits for it, then matches nothing), so only one gets "confirmed" and
    # with it the welcome mail.
    claimed = session.execute(
        update(Subscription)
        .where(Subscription.id == sub.id, Subscription.status != SubscriptionStatus.confirmed)
        .values(
            status=SubscriptionStatus.confirmed,
            confirmed_at=now,
            unsubscribed_at=None,  # the reader came back themselves
            unsubscribe_reason=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(sub)
    if not getattr(claimed, "rowcount", 1):
        return ConfirmState.already, sub
    subscriber = sub.subscriber
    if subscriber.status != SubscriberStatus.active:
        # The reader proved the mailbox works and asked again: lift the old suppression.
        subscriber.status = SubscriberStatus.active
        subscriber.bounce_score = 0
    _emit_subscription(session, "confirmed", sub, subscriber.email, sub.mailing_list.slug)
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


def unsubscribe(
    session: Session, settings: Settings, token: str, reason: str = "reader"
) -> Subscription:
    """Immediate and idempotent; coming back needs a new confirmation."""
    sub = unsubscription(session, settings, token)
    leave(sub, reason)
    return sub


def leave(sub: Subscription, reason: str) -> bool:
    """The one place a subscription ends (a reader's link or preference page, sunset):
    stamped with why. False when it had ended already."""
    if sub.status == SubscriptionStatus.unsubscribed:
        return False
    sub.status = SubscriptionStatus.unsubscribed
    sub.unsubscribed_at = utcnow()
    sub.unsubscribe_reason = reason
    session = object_session(sub)
    if session is not None:
        _emit_subscription(
            session, "unsubscribed", sub, sub.subscriber.email, sub.mailing_list.slug
        )
    return True


def _emit_subscription(
    session: Session, kind: str, sub: Subscription, email: str, slug: str
) -> None:
    """The webhook event of a subscription's change (newsletter/webhooks/): an outbox row
    in this transaction per endpoint that asked for it; nothing when none did."""
    _emit(session, kind, sub.status, sub.unsubscribe_reason, email, slug)


def _emit(
    session: Session, kind: str, status: str, reason: str | None, email: str, slug: str
) -> None:
    data = {"email": email, "list": slug, "status": status}
    if kind == "unsubscribed":
        data["reason"] = reason or ""
    emit(session, kind, data)
