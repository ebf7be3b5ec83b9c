"""Mailing lists: creation rules shared by the CLI and the admin API."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import InvalidInput, NotFound
from newsletter.models import MailingList

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def create_list(
    session: Session,
    slug: str,
    name: str,
    schedule: str | None = None,
    timezone: str = "UTC",
    description: str = "",
) -> MailingList:
    slug = slug.strip()
    if not SLUG.match(slug):
        raise InvalidInput("slug", "A list slug is lower-case letters, digits and dashes.")
    name = " ".join((name or "").split())
    if not name or len(name) > 200:
        raise InvalidInput("name", "A list needs a name of at most 200 characters.")
    if schedule and not croniter.is_valid(schedule):
        raise InvalidInput("schedule", f"{schedule!r} is not a cron expression.")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"{timezone!r} is not a known time zone.") from None
    if session.scalar(select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise InvalidInput("slug", f"A list called {slug!r} exists already.")
    mlist = MailingList(
        slug=slug,
        name=name,
        schedule=schedule or None,
        timezone=timezone,
        description=description,
    )
    session.add(mlist)
    session.flush()
    return mlist


def list_records(session: Session) -> list[dict[str, object]]:
    rows = session.scalars(select(MailingList).order_by(MailingList.slug))
    return [
        {"slug": m.slug, "name": m.name, "schedule": m.schedule, "timezone": m.timezone}
        for m in rows
    ]


def find_list(session: Session, slug: str | None) -> MailingList:
    slug = (slug or "").strip()
    if not slug:
        raise InvalidInput("list", "Please choose a newsletter.")
    found = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        raise NotFound("list", f"There is no newsletter called {slug!r}.")
    return found
