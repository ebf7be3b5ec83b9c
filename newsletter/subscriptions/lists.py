"""Mailing lists: creation rules shared by the CLI and the admin API.

A list's template folder is tried before it is set (a sample digest rendered with it,
digests/render.py check_template_dir): a folder whose templates drop the unsubscribe
link or the postal address, go past the size budget or do not parse is refused with
the reason, and the list stays as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import Conflict, InvalidInput, NotFound
from newsletter.models import MailingList, utcnow

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def _check_zone(timezone: str) -> None:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"{timezone!r} is not a known time zone.") from None


@dataclass(frozen=True)
class Options:
    """A list's audience options (None: leave as it is). `local_time` and `weekly` take
    "" to turn them off; `sunset_after` 0 turns sunset off."""

    welcome: bool | None = None
    local_time: str | None = None
    track_clicks: bool | None = None
    track_opens: bool | None = None
    sunset_after: int | None = None
    weekly: str | None = None
    form_fields: list[dict[str, Any]] | None = None


_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]\Z")


def _apply_options(mlist: MailingList, options: Options) -> None:
    """Checks every option first, then sets them: a bad one changes nothing."""
    local_time = options.local_time
    if local_time is not None:
        local_time = local_time.strip()
        if local_time.lower() in ("", "none"):
            local_time = ""
        elif not _HHMM.match(local_time):
            raise InvalidInput("local_time", f"{local_time!r} is not a time of day as HH:MM.")
    weekly = options.weekly
    if weekly is not None:
        weekly = weekly.strip()
        if weekly.lower() in ("", "none"):
            weekly = ""
        elif not croniter.is_valid(weekly):
            raise InvalidInput("weekly", f"{weekly!r} is not a cron expression.")
    if options.sunset_after is not None and not 0 <= options.sunset_after <= 1000:
        raise InvalidInput("sunset_after", "sunset after 1 to 1000 digests, or 0 for never.")
    form_fields = None
    if options.form_fields is not None:
        form_fields = [_form_field(f) for f in options.form_fields]
        names = [f["name"] for f in form_fields]
        if len(set(names)) != len(names):
            raise InvalidInput("form_fields", "each form field needs a name of its own.")
    tracking = mlist.track_clicks if options.track_clicks is None else options.track_clicks
    sunset = mlist.sunset_after if options.sunset_after is None else options.sunset_after
    if sunset and not tracking:
        # Without click data every reader looks unengaged: sunset would end them all.
        raise InvalidInput(
            "sunset_after", "sunset needs click tracking on the list (--track-clicks)."
        )
    if options.welcome is not None:
        mlist.welcome = options.welcome
    if local_time is not None:
        mlist.local_time = local_time or None
    if options.track_clicks is not None:
        mlist.track_clicks = options.track_clicks
    if options.track_opens is not None:
        mlist.track_opens = options.track_opens
    if options.sunset_after is not None:
        mlist.sunset_after = options.sunset_after or None
    if weekly is not None:
        mlist.weekly = weekly or None
    if form_fields is not None:
        mlist.form_fields = form_fields


def _form_field(raw: Any) -> dict[str, Any]:
    """{"name", "label", "required"}: an extra field of the sign-up form, kept as an
    attribute of that name."""
    from newsletter.subscriptions.attributes import check_name

    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise InvalidInput("form_fields", "a form field is {name, label, required}.")
    name = check_name(raw["name"].strip(), "form_fields")
    label = " ".join(str(raw.get("label") or name).split())[:100]
    return {"name": name, "label": label, "required": bool(raw.get("required", False))}


def field_specs(specs: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Form fields written as `NAME[:LABEL][!]` ('!' required; 'none' or blank lines are
    skipped): the syntax of `lists create --form-field` and of the console's list form."""
    fields: list[dict[str, Any]] = []
    for spec in specs:
        spec = spec.strip()
        if not spec or spec.lower() == "none":
            continue
        required = spec.endswith("!")
        name, _, label = spec.rstrip("!").partition(":")
        fields.append(
            {"name": name.strip(), "label": label.strip() or name.strip(), "required": required}
        )
    return fields


def create_list(
    session: Session,
    slug: str,
    name: str,
    schedule: str | None = None,
    timezone: str = "UTC",
    description: str = "",
    *,
    template_dir: str | None = None,
    settings: Settings | None = None,
    options: Options | None = None,
) -> MailingList:
    """A new list; with `template_dir` (needs `settings`), its own digest templates."""
    slug = slug.strip()
    if not SLUG.match(slug):
        raise InvalidInput("slug", "A list slug is lower-case letters, digits and dashes.")
    name = " ".join((name or "").split())
    if not name or len(name) > 200:
        raise InvalidInput("name", "A list needs a name of at most 200 characters.")
    if schedule and not croniter.is_valid(schedule):
        raise InvalidInput("schedule", f"{schedule!r} is not a cron expression.")
    _check_zone(timezone)
    if session.scalar(select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise InvalidInput("slug", f"A list called {slug!r} exists already.")
    mlist = MailingList(
        slug=slug,
        name=name,
        schedule=schedule or None,
        timezone=timezone,
        description=description,
    )
    mlist.form_fields = []
    _apply_options(mlist, options or Options())
    if template_dir is not None:
        mlist.template_dir = _templates(settings, mlist, template_dir)
    session.add(mlist)
    session.flush()
    return mlist


def list_records(session: Session) -> list[dict[str, object]]:
    rows = session.scalars(select(MailingList).order_by(MailingList.slug))
    return [list_record(m) for m in rows]


def find_list(session: Session, slug: str | None) -> MailingList:
    slug = (slug or "").strip()
    if not slug:
        raise InvalidInput("list", "Please choose a newsletter.")
    # A name no list can have (a NUL byte, say) is not found, without asking the database.
    found = (
        session.scalar(select(MailingList).where(MailingList.slug == slug))
        if SLUG.match(slug)
        else None
    )
    if found is None:
        raise NotFound("list", f"There is no newsletter called {slug!r}.")
    return found


def _templates(settings: Settings | None, mlist: MailingList, folder: str) -> str:
    if settings is None:
        raise TypeError("setting a template folder needs the settings")
    # Imported here: rendering needs the story store, which finds lists through this module.
    from newsletter.digests.render import check_template_dir

    return check_template_dir(settings, mlist, folder, now=utcnow())


def list_record(mlist: MailingList) -> dict[str, object]:
    record: dict[str, object] = {
        "slug": mlist.slug,
        "name": mlist.name,
        "schedule": mlist.schedule,
        "timezone": mlist.timezone,
    }
    if mlist.template_dir:  # shown only when set: records of lists without stay as they were
        record["template_dir"] = mlist.template_dir
    # Audience options likewise only when a list turns them on.
    options = {
        "welcome": bool(mlist.welcome),
        "local_time": mlist.local_time,
        "track_clicks": bool(mlist.track_clicks),
        "track_opens": bool(mlist.track_opens),
        "sunset_after": mlist.sunset_after,
        "weekly": mlist.weekly,
        "form_fields": list(mlist.form_fields or []),
    }
    record.update({k: v for k, v in options.items() if v})
    return record


def update_list(
    session: Session,
    slug: str,
    *,
    name: str | None = None,
    schedule: str | None = None,
    timezone: str | None = None,
    clear_schedule: bool = False,
    template_dir: str | None = None,
    clear_template_dir: bool = False,
    settings: Settings | None = None,
    options: Options | None = None,
) -> MailingList:
    """Change what an operator may change; the slug (in every link and List-Id) stays.

    A new template folder is tried with the list's new name and time zone before
    anything changes."""
    mlist = find_list(session, slug)
    _apply_options(mlist, options or Options())
    if name is not None:
        name = " ".join(name.split())
        if not name or len(name) > 200:
            raise InvalidInput("name", "A list needs a name of at most 200 characters.")
        mlist.name = name
    if clear_schedule:
        mlist.schedule = None
    elif schedule is not None:
        if not croniter.is_valid(schedule):
            raise InvalidInput("schedule", f"{schedule!r} is not a cron expression.")
        mlist.schedule = schedule
    if timezone is not None:
        _check_zone(timezone)
        mlist.timezone = timezone
    if clear_template_dir:
        mlist.template_dir = None
    elif template_dir is not None:
        mlist.template_dir = _templates(settings, mlist, template_dir)
    session.flush()
    return mlist


def delete_list(session: Session, slug: str) -> dict[str, int]:
    """Delete a list with its subscriptions and digests (and their ledger); the people stay.

    Stories meant only for this list become stories for every list rather than vanish.
    """
    from sqlalchemy import func

    from newsletter.models import Digest, Subscription

    mlist = find_list(session, slug)
    subscriptions = session.scalar(
        select(func.count()).select_from(Subscription).where(Subscription.list_id == mlist.id)
    )
    digests = session.scalar(
        select(func.count()).select_from(Digest).where(Digest.list_id == mlist.id)
    )
    sending = session.scalar(
        select(Digest.id)
        .where(Digest.list_id == mlist.id, Digest.status.in_(("sending", "paused")))
        .limit(1)
    )
    if sending is not None:
        raise Conflict("slug", f"List {slug!r} has send {sending} under way; cancel it first.")
    session.execute(delete(MailingList).where(MailingList.id == mlist.id))
    session.expunge(mlist)
    return {"subscriptions": int(subscriptions or 0), "digests": int(digests or 0)}
