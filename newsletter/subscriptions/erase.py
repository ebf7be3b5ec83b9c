"""Erasure: remove a person's data, keep only a keyed hash so imports skip them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import (
    Subscriber,
)
from newsletter.subscriptions.addresses import normalise_email
from newsletter.subscriptions.suppression import suppress


def erase(session: Session, settings: Settings, email: str) -> bool:
    """Remove the person's data; keep only a keyed hash so imports skip them."""
    address = normalise_email(email)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        return False
    session.delete(subscriber)
    suppress(session, settings, address, "erased")
    return True
