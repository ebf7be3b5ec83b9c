"""An operator edits a reader: their attributes (the API, the console).

One function for every face, so the API's PATCH and the console's form agree: the
changes go through attributes.merge (a null removes one; everything is checked by
attributes.clean, the one validator), or replace the whole object.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.errors import InvalidInput, NotFound
from newsletter.models import Subscriber
from newsletter.subscriptions.addresses import normalise_email
from newsletter.subscriptions.attributes import clean, merge


def find_reader(session: Session, email: str) -> Subscriber:
    try:
        address = normalise_email(email)
    except InvalidInput:
        raise NotFound("email", f"no subscriber {email}") from None
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        raise NotFound("email", f"no subscriber {email}")
    return subscriber


@audit.audited("subscribers.attributes", lambda email, *a, **k: f"subscriber {email}")
def set_attributes(
    session: Session,
    settings: Settings,
    email: str,
    changes: Any,
    *,
    replace: bool = False,
) -> Done[dict[str, Any]]:
    """Merge `changes` into the reader's attributes (null removes one), or with `replace`
    make them exactly `changes`. InvalidInput (field "attributes") before any write."""
    subscriber = find_reader(session, email)
    attributes = clean(changes) if replace else merge(subscriber.attributes, _object(changes))
    if replace:
        attributes = {k: v for k, v in attributes.items() if v is not None}
    subscriber.attributes = attributes
    session.flush()
    return Done({"email": subscriber.email, "attributes": dict(attributes)})


def _object(changes: Any) -> dict[str, Any]:
    if not isinstance(changes, dict):
        raise InvalidInput("attributes", "attributes must be a JSON object of name: value.")
    return changes
