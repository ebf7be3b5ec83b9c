"""The preference centre: a reader manages their own lists, name, language and frequency,
downloads what is stored about them and erases themselves.

Who the reader is comes from a link: the one in every mail (PreferencesSigner, no
expiry, names a subscription whose reader the page is for) or one asked for by address
(`link_token`, valid for an hour, names the reader). Saving applies only what the reader
changed on the page they saw (the form carries what it showed), so a leave or a change
made meanwhile elsewhere is never undone; joining a list always goes through a new
double opt-in confirmation, never straight onto the list.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.effects import Done, Effect, SendConfirmation, SendPreferencesLink
from newsletter.errors import InvalidInput
from newsletter.mail.message import address
from newsletter.mail.render import render_email
from newsletter.mail.system import Outgoing, system_mail
from newsletter.models import (
    Delivery,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.subscriptions.addresses import clean_name, normalise_email
from newsletter.subscriptions.consent import ConsentRecord, Outcome, leave, subscribe
from newsletter.subscriptions.erase import erase
from newsletter.subscriptions.tokens import (
    TokenExpired,
    TokenInvalid,
    make_preferences_token,
    read_preferences_token,
)

LINK_SALT = "preferences-link"
LINK_TTL_SECONDS = 3600
FREQUENCIES = ("every", "weekly")


# Links ------------------------------------------------------------------------------------


def link_token(secret: str, subscriber_id: int, now: float | None = None) -> str:
    """The link mailed on request: "t." + signed [subscriber id, issued at], an hour long."""
    issued = int(now if now is not None else time.time())
    return "t." + URLSafeSerializer(secret, salt=LINK_SALT).dumps([subscriber_id, issued])


def reader_id(session: Session, settings: Settings, token: str, now: float | None = None) -> int:
    """The subscriber a preference link is for; TokenInvalid (also for a reader erased
    since) or TokenExpired (an asked-for link older than an hour)."""
    if token.startswith("t."):
        try:
            sid, issued = URLSafeSerializer(settings.secret, salt=LINK_SALT).loads(token[2:])
            subscriber_id, issued = int(sid), int(issued)
        except (BadSignature, ValueError, TypeError):
            raise TokenInvalid() from None
        if (now if now is not None else time.time()) - issued > LINK_TTL_SECONDS:
            raise TokenExpired(subscriber_id)
    else:
        found = session.scalar(
            select(Subscription.subscriber_id).where(
                Subscription.id == read_preferences_token(settings.secret, token)
            )
        )
        if found is None:
            raise TokenInvalid()
        subscriber_id = found
    if session.get(Subscriber, subscriber_id) is None:
        raise TokenInvalid()
    return subscriber_id


def preferences_url(settings: Settings, subscription_id: int) -> str:
    """The preference centre's link in a mail about this subscription."""
    token = make_preferences_token(settings.secret, subscription_id)
    return f"{settings.base_url}/preferences/{token}"


def known_reader(session: Session, settings: Settings, email: str) -> int | None:
    """The subscriber id behind an address typed into the "send me my link" form, or None
    (a malformed address is simply unknown: the answer is the same either way)."""
    try:
        normalised = normalise_email(email)
    except InvalidInput:
        return None
    return session.scalar(select(Subscriber.id).where(Subscriber.email == normalised))


# The page ---------------------------------------------------------------------------------


def view(session: Session, settings: Settings, subscriber_id: int) -> dict[str, Any]:
    """Everything the page shows: the reader and every list, joined or not."""
    reader = session.get(Subscriber, subscriber_id)
    assert reader is not None
    mine = {s.list_id: s for s in reader.subscriptions}
    lists = []
    for mlist in session.scalars(select(MailingList).order_by(MailingList.name)):
        sub = mine.get(mlist.id)
        status = sub.status if sub is not None else None
        lists.append(
            {
                "slug": mlist.slug,
                "name": mlist.name,
                "description": mlist.description,
                "subscribed": status == SubscriptionStatus.confirmed,
                "pending": status == SubscriptionStatus.unconfirmed,
                "frequency": sub.frequency if sub is not None else "every",
                "weekly": bool(mlist.weekly),
            }
        )
    return {
        "email": reader.email,
        "name": reader.name or "",
        "language": reader.language,
        "lists": lists,
    }


@dataclass
class Saved:
    left: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)  # a confirmation mail goes out
    changed: list[str] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


def _flag(form: Mapping[str, str], key: str) -> bool:
    return form.get(key, "") in ("1", "on", "yes", "true")


def save(
    session: Session,
    settings: Settings,
    subscriber_id: int,
    form: Mapping[str, str],
    consent: ConsentRecord,
) -> Saved:
    """Apply the page's form. Per list "list.<slug>" (checked = on it), "shown.<slug>" (what
    the page showed), "frequency.<slug>"; and "name", "language". InvalidInput before any
    write for a bad value."""
    reader = session.get(Subscriber, subscriber_id)
    assert reader is not None
    name = clean_name(form.get("name", reader.name or ""))
    language = form.get("language") or reader.language
    if language and language not in settings.language_codes:
        raise InvalidInput(
            "language", f"{language!r} is not one of {', '.join(settings.language_codes)}."
        )
    for key, value in form.items():
        if key.startswith("frequency.") and value not in FREQUENCIES:
            raise InvalidInput("frequency", "The frequency is every edition or weekly.")
    saved = Saved()
    if name != (reader.name or ""):
        reader.name = name
        saved.changed.append("name")
    if language != reader.language:
        reader.language = language
        saved.changed.append("language")
    mine = {s.list_id: s for s in reader.subscriptions}
    for mlist in session.scalars(select(MailingList).order_by(MailingList.id)):
        key = mlist.slug
        if f"shown.{key}" not in form:
            continue  # a list the page did not show (created since): left alone
        shown, wanted = _flag(form, f"shown.{key}"), _flag(form, f"list.{key}")
        sub = mine.get(mlist.id)
        if shown and not wanted and sub is not None:
            if leave(sub, "reader"):
                saved.left.append(mlist.name)
        elif wanted and not shown:
            result = subscribe(
                session,
                settings,
                email=reader.email,
                name=None,
                list_slug=mlist.slug,
                consent=consent,
            )
            if result.outcome is Outcome.pending and result.subscription_id is not None:
                saved.effects.append(SendConfirmation(result.subscription_id))
                saved.asked.append(mlist.name)
            elif result.outcome is Outcome.already_pending:
                saved.asked.append(mlist.name)
        frequency = form.get(f"frequency.{key}")
        sub = mine.get(mlist.id)
        if (
            frequency
            and mlist.weekly
            and sub is not None
            and sub.status == SubscriptionStatus.confirmed
            and frequency != sub.frequency
        ):
            sub.frequency = frequency
            saved.changed.append(f"frequency of {mlist.name}")
    session.flush()
    return saved


# Export -----------------------------------------------------------------------------------


def _when(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def export(session: Session, settings: Settings, subscriber_id: int) -> dict[str, Any]:
    """Everything stored about the reader, as JSON-ready data (the "Download my data")."""
    reader = session.get(Subscriber, subscriber_id)
    assert reader is not None
    subscriptions = []
    for sub in sorted(reader.subscriptions, key=lambda s: s.id):
        subscriptions.append(
            {
                "list": sub.mailing_list.slug,
                "list_name": sub.mailing_list.name,
                "status": sub.status,
                "frequency": sub.frequency,
                "created_at": _when(sub.created_at),
                "confirmation_sent_at": _when(sub.confirm_sent_at),
                "confirmed_at": _when(sub.confirmed_at),
                "unsubscribed_at": _when(sub.unsubscribed_at),
                "unsubscribe_reason": sub.unsubscribe_reason,
                "consent": {
                    "at": _when(sub.consent_at),
                    "ip": sub.consent_ip,
                    "user_agent": sub.consent_user_agent,
                    "source": sub.consent_source,
                    "text_version": sub.consent_text_version,
                },
            }
        )
    counts = session.execute(
        select(Delivery.status, func.count(), func.max(Delivery.updated_at))
        .where(Delivery.subscriber_id == subscriber_id)
        .group_by(Delivery.status)
    ).all()
    return {
        "subscriber": {
            "email": reader.email,
            "name": reader.name,
            "status": reader.status,
            "language": reader.language,
            "timezone": reader.timezone,
            "created_at": _when(reader.created_at),
            "last_click_at": _when(reader.last_click_at),
            "bounce_score": reader.bounce_score,
        },
        "attributes": dict(reader.attributes or {}),
        "subscriptions": subscriptions,
        "deliveries": {
            "by_status": {str(status): int(n) for status, n, _ in counts},
            "total": sum(int(n) for _, n, _ in counts),
            "last_at": _when(max((last for _, _, last in counts if last), default=None)),
        },
    }


# What the pages call (through workers.gateway.perform) ------------------------------------
# A reader's own actions on their own data: recorded in the consent records and the
# subscription stamps, not in the operators' audit log.


def page_view(
    session: Session, settings: Settings, token: str, now: float | None = None
) -> Done[dict[str, Any]]:
    """The page for a link; TokenInvalid / TokenExpired. Reads only."""
    return Done(view(session, settings, reader_id(session, settings, token, now)))


def save_page(
    session: Session,
    settings: Settings,
    token: str,
    form: Mapping[str, str],
    consent: ConsentRecord,
) -> Done[dict[str, Any]]:
    """The page's "Save": the confirmation mails of lists joined go out after commit."""
    subscriber_id = reader_id(session, settings, token)
    saved = save(session, settings, subscriber_id, form, consent)
    value = {
        "left": saved.left,
        "asked": saved.asked,
        "changed": saved.changed,
        **view(session, settings, subscriber_id),
    }
    return Done(value, tuple(saved.effects))


def export_page(session: Session, settings: Settings, token: str) -> Done[dict[str, Any]]:
    """ "Download my data"."""
    return Done(export(session, settings, reader_id(session, settings, token)))


def erase_page(session: Session, settings: Settings, token: str) -> Done[bool]:
    """ "Erase me", confirmed: subscriptions/erase.py, as when an operator erases."""
    reader = session.get(Subscriber, reader_id(session, settings, token))
    assert reader is not None
    return Done(erase(session, settings, reader.email))


def ask_link(session: Session, settings: Settings, email: str, language: str | None) -> Done[None]:
    """ "Send me my link": a mail to a known reader, nothing for anyone else; the page
    answers the same either way."""
    found = known_reader(session, settings, email)
    if found is None:
        return Done(None)
    return Done(None, (SendPreferencesLink(found, language),))


def link_email(
    session: Session, settings: Settings, subscriber_id: int, language: str | None
) -> Outgoing | None:
    """The mail with an hour-long link to the page, signed, with its own return path."""
    reader = session.get(Subscriber, subscriber_id)
    if reader is None:
        return None
    url = f"{settings.base_url}/preferences/{link_token(settings.secret, subscriber_id)}"
    rendered = render_email(
        "preferences",
        {
            "name": reader.name,
            "email": reader.email,
            "preferences_url": url,
            "postal_address": settings.postal_address,
        },
        language=reader.language or language,
    )
    to = address(reader.email, reader.name)
    return system_mail(settings, "p", subscriber_id, to=to, rendered=rendered)
