"""The suppression list: addresses never to mail again, kept as keyed hashes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import (
    Suppression,
)
from newsletter.subscriptions.addresses import email_hash


def is_suppressed(session: Session, settings: Settings, email: str) -> bool:
    digest = email_hash(email, settings.secret)
    return (
        session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is not None
    )


def suppress(session: Session, settings: Settings, email: str, reason: str) -> None:
    digest = email_hash(email, settings.secret)
    if session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is None:
        session.add(Suppression(email_hash=digest, reason=reason))
