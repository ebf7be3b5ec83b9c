"""Console logins and API tokens turned into the acting person (audit.Actor).

The session cookie is a random id signed with SECRET_KEY; the database keeps only the
id's SHA-256 with the user, the session's CSRF token and its expiry. Logout deletes the
row, so a copied cookie stops working at once; so do disabling the user and a new
password.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, Signer
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.accounts.actions import lookup_address, token_hash
from newsletter.accounts.passwords import dummy_hash, verify
from newsletter.config import Settings
from newsletter.errors import InvalidInput
from newsletter.models import ApiToken, User, UserSession, utcnow

WRONG = "wrong e-mail address or password"


@dataclass(frozen=True)
class Login:
    user: User
    cookie: str  # the signed session id for the cookie
    csrf: str


@dataclass(frozen=True)
class Current:
    """A live console session: who, and the CSRF token its forms carry."""

    actor: audit.Actor
    user_id: int
    csrf: str


def _signer(settings: Settings) -> Signer:
    return Signer(settings.secret, salt="console-session")


def login(session: Session, settings: Settings, email: str, password: str, ip: str) -> Login:
    """Check the password (argon2; the same work for an unknown address) and open a session."""
    address = lookup_address(email)
    user = None
    if address is not None:
        user = session.scalar(select(User).where(func.lower(User.email) == address))
    if user is None or user.disabled:
        verify(dummy_hash(), password)
        raise InvalidInput("password", WRONG)
    if not verify(user.password_hash, password):
        raise InvalidInput("password", WRONG)
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = utcnow()
    session.add(
        UserSession(
            id_hash=token_hash(raw),
            user_id=user.id,
            csrf=csrf,
            created_at=now,
            expires_at=now + timedelta(hours=settings.console_session_hours),
            ip=ip[:64],
        )
    )
    user.last_login_at = now
    # Expired sessions go as new ones come: the table stays the size of the live ones.
    session.execute(delete(UserSession).where(UserSession.expires_at < now))
    with audit.acting_as(audit.Actor(user.email, "console", user.role)):
        audit.record(session, "console.login", user.email, {"ip": ip[:64]})
    return Login(user, _signer(settings).sign(raw).decode(), csrf)


def _raw(settings: Settings, cookie: str | None) -> str | None:
    if not cookie or len(cookie) > 200:
        return None
    try:
        return _signer(settings).unsign(cookie).decode()
    except BadSignature:
        return None


def current(session: Session, settings: Settings, cookie: str | None) -> Current | None:
    """The session the cookie names, if it is live and its user enabled."""
    raw = _raw(settings, cookie)
    if raw is None:
        return None
    found = session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.id_hash == token_hash(raw))
    ).first()
    if found is None:
        return None
    row, user = found
    if user.disabled or row.expires_at <= utcnow():
        return None
    return Current(audit.Actor(user.email, "console", user.role), user.id, row.csrf)


def logout(session: Session, settings: Settings, cookie: str | None) -> None:
    raw = _raw(settings, cookie)
    if raw is None:
        return
    found = session.get(UserSession, token_hash(raw))
    if found is not None:
        user = session.get(User, found.user_id)
        session.delete(found)
        if user is not None:
            with audit.acting_as(audit.Actor(user.email, "console", user.role)):
                audit.record(session, "console.logout", user.email)


def token_actor(session: Session, token: str) -> audit.Actor | None:
    """The enabled user whose unrevoked API token this is."""
    if not token.startswith("nlt_") or len(token) > 200:
        return None
    found = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash(token))
    ).first()
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or user.disabled:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now  # at most once a minute: a busy script writes little
    return audit.Actor(user.email, "api", user.role)
