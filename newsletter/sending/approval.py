"""Two-person approval: with NEWSLETTER_SEND_APPROVAL on, a send waits as
"awaiting_approval" until another sender or admin approves it.

The request writes nothing to the ledger and uses no stories up; approving starts the
send exactly as `send` would have. The person who asked can never approve their own
request, whichever face either of them used (names compare case-insensitively).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.accounts.roles import Capability, can
from newsletter.config import Settings
from newsletter.errors import Forbidden
from newsletter.models import Digest, DigestStatus, User, utcnow
from newsletter.sending import lifecycle
from newsletter.sending.job import Range, start_send
from newsletter.sending.lifecycle import Event, IllegalTransition


def request(session: Session, digest: Digest) -> None:
    """draft → awaiting_approval, asked by the current actor."""
    if not lifecycle.submit(session, digest.id, audit.current().name):
        message = f"digest {digest.id} is {digest.status}, not a draft"
        raise IllegalTransition(digest.status, Event.submit, message, field="digest")
    session.refresh(digest)


def approver(session: Session, by: str | None) -> str:
    """Who approves: the user named by `by` (the CLI's --by), else the current actor;
    either must be an enabled user who may send."""
    if by is None:
        actor = audit.current()
        if not can(actor.role, Capability.send):
            raise Forbidden("by", "only a sender, admin or owner approves a send")
        return actor.name
    user = session.scalar(select(User).where(func.lower(User.email) == by.strip().lower()))
    if user is None or user.disabled:
        raise Forbidden("by", f"{by} is not an enabled user")
    if not can(user.role, Capability.send):
        raise Forbidden("by", f"{user.email} is {user.role}; a sender, admin or owner approves")
    return user.email


def approve(session: Session, settings: Settings, digest: Digest, by: str | None) -> list[Range]:
    """awaiting_approval → sending by a second person; returns the ranges to enqueue."""
    if digest.status != DigestStatus.awaiting_approval:
        message = f"send {digest.id} is {digest.status}, not awaiting approval"
        raise IllegalTransition(digest.status, Event.start, message)
    name = approver(session, by)
    if digest.requested_by and digest.requested_by.lower() == name.lower():
        raise Forbidden("by", "the person who asked for a send cannot approve it")
    digest.approved_by = name
    digest.approved_at = utcnow()
    return start_send(session, settings, digest)


def withdraw(session: Session, digest: Digest) -> None:
    """awaiting_approval → draft (refused, or taken back by the person who asked)."""
    if not lifecycle.withdraw(session, digest.id):
        message = f"send {digest.id} is {digest.status}, not awaiting approval"
        raise IllegalTransition(digest.status, Event.withdraw, message)
