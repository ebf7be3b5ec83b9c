"""Operator and reader actions on lists and subscriptions: one function each.

The CLI, the admin API and the public pages call these through workers.gateway.perform,
so they cannot disagree. Each takes the session and settings first, changes the store
(flushing, never committing), and returns `Done`: the value the face shows and the
effects to queue once the transaction has committed (the confirmation mail).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.effects import Done, Effect, SendConfirmation, SendWelcome
from newsletter.errors import Conflict, InvalidInput, NotFound
from newsletter.models import SubscriptionStatus
from newsletter.subscriptions import lists
from newsletter.subscriptions.consent import (
    ConfirmState,
    ConsentRecord,
    Refusal,
    SubscribeResult,
    check_confirm,
    confirm,
    renew_confirmation,
    subscribe,
    unsubscribe,
    unsubscription,
)
from newsletter.subscriptions.erase import erase
from newsletter.subscriptions.subscribers import ImportReport, import_csv, subscriber_records
from newsletter.subscriptions.tokens import (
    ConfirmClaim,
    make_preferences_token,
    make_unsubscribe_token,
)


def refusal_message(email: str, list_slug: str, refusal: Refusal) -> str:
    """One line for the operator: who, why, and the only way back."""
    why = {
        Refusal.unsubscribed: f"unsubscribed from {list_slug!r}",
        Refusal.complained: "complained (marked our mail as spam)",
        Refusal.bounced: "is suppressed: the mailbox bounced",
        Refusal.erased: "is suppressed: erased at the reader's request",
        Refusal.suppressed: "is suppressed",
    }[refusal]
    back = "Only the reader can subscribe again, through the sign-up form and its confirmation"
    if refusal is Refusal.bounced:
        back += " (or lift the suppression once the mailbox works again)"
    return f"{email} {why}; not added ({refusal.value}). {back}."


def _confirmation(result: SubscribeResult) -> tuple[Effect, ...]:
    if result.send_confirmation and result.subscription_id is not None:
        return (SendConfirmation(result.subscription_id),)
    return ()


# Lists ------------------------------------------------------------------------------------


@audit.audited("lists.create", lambda slug, *a, **k: f"list {slug}")
def create_list(
    session: Session,
    settings: Settings,
    slug: str,
    name: str,
    schedule: str | None = None,
    timezone: str = "UTC",
    template_dir: str | None = None,
    options: lists.Options | None = None,
) -> Done[dict[str, object]]:
    """A new list; a template folder is tried with a sample digest first (refused with
    the reason: no unsubscribe link or postal address, too big, a syntax error)."""
    mlist = lists.create_list(
        session,
        slug,
        name,
        schedule,
        timezone,
        template_dir=template_dir,
        settings=settings,
        options=options,
    )
    return Done(lists.list_record(mlist))


@audit.audited("lists.update", lambda slug, **k: f"list {slug}")
def update_list(
    session: Session,
    settings: Settings,
    slug: str,
    *,
    name: str | None = None,
    schedule: str | None = None,
    timezone: str | None = None,
    clear_schedule: bool = False,
    template_dir: str | None = None,
    clear_template_dir: bool = False,
    options: lists.Options | None = None,
) -> Done[dict[str, object]]:
    mlist = lists.update_list(
        session,
        slug,
        name=name,
        schedule=schedule,
        timezone=timezone,
        clear_schedule=clear_schedule,
        template_dir=template_dir,
        clear_template_dir=clear_template_dir,
        settings=settings,
        options=options,
    )
    return Done(lists.list_record(mlist))


@audit.audited("lists.delete", lambda slug: f"list {slug}")
def delete_list(session: Session, settings: Settings, slug: str) -> Done[dict[str, object]]:
    removed = lists.delete_list(session, slug)
    return Done({"slug": slug, "deleted": True, **removed})


def list_lists(session: Session, settings: Settings) -> Done[list[dict[str, object]]]:
    return Done(lists.list_records(session))


# Subscribers ------------------------------------------------------------------------------


def subscribe_reader(
    session: Session,
    settings: Settings,
    *,
    email: str,
    name: str | None,
    list_slug: str | None,
    consent: ConsentRecord,
    attributes: dict[str, Any] | None = None,
    language: str | None = None,
    timezone: str | None = None,
) -> Done[SubscribeResult]:
    """A reader's own request (form or JSON): a confirmation mail when one is due."""
    result = subscribe(
        session,
        settings,
        email=email,
        name=name,
        list_slug=list_slug,
        consent=consent,
        attributes=attributes,
        language=language,
        timezone=timezone,
    )
    return Done(result, _confirmation(result))


def renew_link(session: Session, settings: Settings, claim: ConfirmClaim) -> Done[SubscribeResult]:
    """An expired confirmation link's "send me a new one" button."""
    result = renew_confirmation(session, settings, claim)
    return Done(result, _confirmation(result))


@audit.audited("subscribers.add", lambda email, list_slug, *a, **k: f"{email} to {list_slug}")
def add_subscriber(
    session: Session,
    settings: Settings,
    email: str,
    list_slug: str,
    name: str = "",
    confirmed: bool = False,
    attributes: dict[str, Any] | None = None,
) -> Done[dict[str, Any]]:
    """An operator adds one address; without --confirmed it gets the confirmation mail.
    `attributes` (--attr) update the reader's (attributes.clean checks them).

    Refused (Conflict) for a reader who unsubscribed from the list, complained, bounced or
    was erased: only the reader's own sign-up and confirmation bring them back.
    """
    result = subscribe(
        session,
        settings,
        email=email,
        name=name,
        list_slug=list_slug,
        consent=ConsentRecord(source="admin"),
        confirmed=confirmed,
        attributes=attributes,
    )
    if result.refusal is not None:
        raise Conflict("email", refusal_message(email, list_slug, result.refusal))
    value = {"email": email, "list": list_slug, "outcome": result.outcome.value}
    return Done(value, _confirmation(result))


@audit.audited("subscribers.import", lambda stream, list_slug, confirmed: f"list {list_slug}")
def import_subscribers(
    session: Session, settings: Settings, stream: IO[str], list_slug: str, confirmed: bool
) -> Done[dict[str, Any]]:
    """A CSV with columns email,name: one transaction, a confirmation mail per new row."""
    report = _import(session, settings, stream, list_slug, confirmed)
    return Done(_report_value(report), tuple(SendConfirmation(i) for i in report.pending_ids))


def preview_import(
    session: Session,
    settings: Settings,
    stream: IO[str],
    list_slug: str,
    confirmed: bool,
    progress: Callable[[int], None] | None = None,
) -> Done[dict[str, Any]]:
    """The dry run: what `import_subscribers` would do with this file; writes nothing."""
    report = _import(
        session, settings, stream, list_slug, confirmed, dry_run=True, progress=progress
    )
    return Done(_report_value(report))


def begin_import(
    session: Session, settings: Settings, list_slug: str, rows: int, confirmed: bool
) -> Done[str]:
    """On record before a file is imported in parts (`import_part`): who, which list,
    how many rows, whether as confirmed."""
    mlist = lists.find_list(session, list_slug)
    audit.record(
        session,
        "subscribers.import",
        f"list {mlist.slug}",
        {"rows": rows, "confirmed": confirmed, "in_parts": True},
    )
    return Done(mlist.slug)


def import_part(
    session: Session,
    settings: Settings,
    stream: IO[str],
    list_slug: str,
    confirmed: bool,
    first_line: int,
) -> Done[dict[str, Any]]:
    """One part of a big file (its own transaction), after `begin_import`."""
    report = _import(session, settings, stream, list_slug, confirmed, first_line=first_line)
    return Done(_report_value(report), tuple(SendConfirmation(i) for i in report.pending_ids))


def _import(
    session: Session,
    settings: Settings,
    stream: IO[str],
    list_slug: str,
    confirmed: bool,
    **options: Any,
) -> ImportReport:
    try:
        return import_csv(session, settings, stream, list_slug, confirmed, **options)
    except UnicodeDecodeError:
        raise InvalidInput("file", "not a UTF-8 text file") from None


def _report_value(report: ImportReport) -> dict[str, Any]:
    return {
        "added": report.added,
        "confirmation_sent": report.pending,
        "unchanged": report.unchanged,
        "skipped": [s.record() for s in report.skipped],
        "invalid": report.invalid,
    }


def list_subscribers(
    session: Session, settings: Settings, list_slug: str | None = None
) -> Done[list[dict[str, object]]]:
    return Done([*subscriber_records(session, list_slug)])


@audit.audited("subscribers.erase", lambda email: "a subscriber (address not kept)")
def erase_subscriber(session: Session, settings: Settings, email: str) -> Done[dict[str, object]]:
    """Delete everything about a person; keep only an anonymous suppression hash."""
    if not erase(session, settings, email):
        raise NotFound("email", f"no subscriber {email}")
    return Done({"email": email, "erased": True, "suppressed": True})


# A reader's own links (confirm, unsubscribe): the pages show what these return ------------


def list_choices(session: Session, settings: Settings) -> Done[list[dict[str, Any]]]:
    """The lists a reader can choose on the form, by name, with their extra form fields."""
    return Done(
        [
            {
                "slug": str(r["slug"]),
                "name": str(r["name"]),
                "form_fields": list(r.get("form_fields") or []),  # type: ignore[call-overload]
            }
            for r in lists.list_records(session)
        ]
    )


def confirmation_view(session: Session, settings: Settings, token: str) -> Done[dict[str, Any]]:
    """What a confirm link is for (a GET changes nothing); TokenInvalid / TokenExpired."""
    sub = check_confirm(session, settings, token)
    return Done(
        {
            "list_name": sub.mailing_list.name,
            "email": sub.subscriber.email,
            "already": sub.status == SubscriptionStatus.confirmed,
            "token": token,
            "language": sub.subscriber.language,
        }
    )


def confirm_link(session: Session, settings: Settings, token: str) -> Done[dict[str, Any]]:
    """The reader's confirmation (the page's button)."""
    state, sub = confirm(session, settings, token)
    # The welcome only on the click that confirmed: a second click sends nothing.
    welcome = state is ConfirmState.confirmed and sub.mailing_list.welcome
    return Done(
        {
            "list_name": sub.mailing_list.name,
            "already": state is ConfirmState.already,
            "unsubscribe_token": make_unsubscribe_token(settings.secret, sub.id),
            "preferences_token": make_preferences_token(settings.secret, sub.id),
            "language": sub.subscriber.language,
        },
        (SendWelcome(sub.id),) if welcome else (),
    )


def unsubscribe_view(session: Session, settings: Settings, token: str) -> Done[dict[str, Any]]:
    """What an unsubscribe link is for (a GET changes nothing); TokenInvalid."""
    sub = unsubscription(session, settings, token)
    return Done(
        {
            "list_name": sub.mailing_list.name,
            "token": token,
            "already": sub.status == SubscriptionStatus.unsubscribed,
            "language": sub.subscriber.language,
        }
    )


def unsubscribe_link(session: Session, settings: Settings, token: str) -> Done[dict[str, Any]]:
    """The reader leaves the list: the page's button, RFC 8058 one-click, or the mailto."""
    sub = unsubscribe(session, settings, token)
    return Done(
        {"list_name": sub.mailing_list.name, "token": token, "language": sub.subscriber.language}
    )
