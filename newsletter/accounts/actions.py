"""Operator actions on accounts: one function each, for the CLI, the API and the console.

The acting person (audit.current()) must hold `users`; only an owner makes, changes or
disables an owner. Tokens and passwords are never returned except the new token itself,
once, and never logged.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.accounts.passwords import hash_password, verify
from newsletter.accounts.roles import Capability, can, parse_role, rank
from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.errors import Conflict, Forbidden, InvalidInput, NotFound
from newsletter.models import ApiToken, User, UserRole, UserSession, utcnow
from newsletter.subscriptions.addresses import normalise_email

TOKEN_PREFIX = "nlt_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_record(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
    }


def _may_manage(role: str) -> None:
    """The actor may give or take `role`: admins manage up to admin, owners everyone."""
    actor = audit.current()
    if not can(actor.role, Capability.users):
        raise Forbidden("role", "only an admin or owner manages users")
    if rank(role) >= rank(UserRole.owner) and not can(actor.role, Capability.owners):
        raise Forbidden("role", "only an owner manages owners")


def lookup_address(email: str) -> str | None:
    """The address as users are looked up by; None for what no address can be (a control
    character: PostgreSQL refuses a NUL in a query, which would be a 500, not a 404)."""
    address = email.strip().lower()
    if not address or len(address) > 320 or any(ord(c) < 32 for c in address):
        return None
    return address


def find_user(session: Session, email: str) -> User:
    address = lookup_address(email)
    user = None
    if address is not None:
        user = session.scalar(select(User).where(func.lower(User.email) == address))
    if user is None:
        raise NotFound("email", f"there is no user {email}")
    return user


@audit.audited("users.create", lambda email, role, password: email)
def create_user(
    session: Session, settings: Settings, email: str, role: str, password: str
) -> Done[dict[str, Any]]:
    chosen = parse_role(role)
    _may_manage(chosen)
    address = normalise_email(email)
    if session.scalar(select(User.id).where(func.lower(User.email) == address.lower())):
        raise Conflict("email", f"there is already a user {address}")
    user = User(email=address, role=chosen, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return Done(user_record(user))


def get_user(session: Session, settings: Settings, user_id: int) -> Done[dict[str, Any]]:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("id", f"there is no user {user_id}")
    return Done(user_record(user))


def list_users(session: Session, settings: Settings) -> Done[list[dict[str, Any]]]:
    users = session.scalars(select(User).order_by(User.email)).all()
    return Done([user_record(u) for u in users])


def _other_owners(session: Session, user: User) -> int:
    return len(
        session.scalars(
            select(User.id).where(
                User.role == UserRole.owner, User.disabled.is_(False), User.id != user.id
            )
        ).all()
    )


@audit.audited("users.disable", lambda email: email)
def disable_user(session: Session, settings: Settings, email: str) -> Done[dict[str, Any]]:
    """Disabled: no login, its sessions end and its tokens stop working at once."""
    user = find_user(session, email)
    _may_manage(user.role)
    if user.role == UserRole.owner and not _other_owners(session, user):
        raise Conflict("email", f"{user.email} is the last owner; make another owner first")
    user.disabled = True
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return Done(user_record(user))


@audit.audited("users.enable", lambda email: email)
def enable_user(session: Session, settings: Settings, email: str) -> Done[dict[str, Any]]:
    user = find_user(session, email)
    _may_manage(user.role)
    user.disabled = False
    return Done(user_record(user))


@audit.audited("users.role", lambda email, role: f"{email} → {role}")
def set_role(session: Session, settings: Settings, email: str, role: str) -> Done[dict[str, Any]]:
    user = find_user(session, email)
    chosen = parse_role(role)
    _may_manage(user.role)
    _may_manage(chosen)
    if (
        user.role == UserRole.owner
        and chosen != UserRole.owner
        and not _other_owners(session, user)
    ):
        raise Conflict("role", f"{user.email} is the last owner; make another owner first")
    user.role = chosen
    return Done(user_record(user))


@audit.audited("users.password", lambda email, password: email)
def set_password(
    session: Session, settings: Settings, email: str, password: str
) -> Done[dict[str, Any]]:
    """A new password; the user's sessions end (tokens stay: they are separate keys)."""
    user = find_user(session, email)
    actor = audit.current()
    if actor.name.lower() != user.email.lower():
        _may_manage(user.role)
    return Done(_new_password(session, user, password))


def _new_password(session: Session, user: User, password: str) -> dict[str, Any]:
    user.password_hash = hash_password(password)
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    return user_record(user)


@audit.audited("users.password", lambda current_password, password: audit.current().name)
def change_own_password(
    session: Session, settings: Settings, current_password: str, password: str
) -> Done[dict[str, Any]]:
    """The acting person's own new password, given the current one (a session left open
    on a shared computer is not enough to take the account); their sessions end."""
    user = find_user(session, audit.current().name)
    if not verify(user.password_hash, current_password):
        raise InvalidInput("current_password", "the current password is wrong")
    return Done(_new_password(session, user, password))


@audit.audited("users.token", lambda email: email)
def new_token(session: Session, settings: Settings, email: str) -> Done[dict[str, Any]]:
    """A new API token for the user, returned this once (only its hash is kept)."""
    user = find_user(session, email)
    actor = audit.current()
    if actor.name.lower() != user.email.lower():
        _may_manage(user.role)
    if user.disabled:
        raise Conflict("email", f"{user.email} is disabled")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=token_hash(token), prefix=token[:12])
    session.add(row)
    session.flush()
    return Done({"id": row.id, "email": user.email, "token": token, "prefix": row.prefix})


def list_tokens(session: Session, settings: Settings, email: str) -> Done[list[dict[str, Any]]]:
    user = find_user(session, email)
    rows = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    ).all()
    return Done(
        [
            {
                "id": t.id,
                "prefix": t.prefix,
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "revoked": t.revoked_at is not None,
            }
            for t in rows
        ]
    )


@audit.audited("users.revoke_token", lambda token_id: f"token {token_id}")
def revoke_token(session: Session, settings: Settings, token_id: int) -> Done[dict[str, Any]]:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound("id", f"there is no token {token_id}")
    owner = session.get(User, row.user_id)
    assert owner is not None
    if audit.current().name.lower() != owner.email.lower():
        _may_manage(owner.role)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return Done({"id": row.id, "revoked": True})


def check_password_input(password: str) -> None:
    if not password:
        raise InvalidInput("password", "a password is required")
