"""The preflight as an operator action: `digest preflight`, the admin API and the send
faces all call this one function."""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.preflight.findings import Report
from newsletter.preflight.run import run_preflight


def preflight(
    session: Session, settings: Settings, list_slug: str, digest_id: int | None = None
) -> Done[Report]:
    """The findings for what a send of the list would send now; changes nothing."""
    return Done(run_preflight(session, settings, list_slug, digest_id))
