"""The audit log: who did what and when, through which face.

Each face says who is acting (`acting_as`: the console's logged-in user, the API token's
owner, the shell user of the CLI); each operator action is decorated with `@audited`,
which writes one AuditEntry in the action's own transaction, so an action that fails
leaves no entry and one that succeeds always has one, whichever face called it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import AuditEntry

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Actor:
    """`name` is a user's e-mail address, "admin-token", "cli:<shell user>" or "system"."""

    name: str
    via: str  # console, api, cli, system
    role: str = "owner"  # what the face checked; the CLI and the bootstrap token are owners


SYSTEM = Actor("system", "system")
_current: ContextVar[Actor] = ContextVar("newsletter_actor", default=SYSTEM)


def current() -> Actor:
    return _current.get()


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def set_actor(actor: Actor) -> None:
    """For a process that is one actor throughout (the CLI)."""
    _current.set(actor)


def record(
    session: Session, action: str, target: str = "", detail: dict[str, Any] | None = None
) -> None:
    actor = current()
    session.add(
        AuditEntry(
            actor=actor.name, via=actor.via, action=action, target=target[:500], detail=detail or {}
        )
    )


def audited(
    action: str, target: Callable[..., str] | None = None
) -> Callable[
    [Callable[Concatenate[Session, Settings, P], T]],
    Callable[Concatenate[Session, Settings, P], T],
]:
    """Record `action` when the decorated domain function returns. `target` gets the
    function's own arguments (after session and settings) and names what it acted on;
    it must never return a secret (a password, a token)."""

    def wrap(
        func: Callable[Concatenate[Session, Settings, P], T],
    ) -> Callable[Concatenate[Session, Settings, P], T]:
        @functools.wraps(func)
        def inner(session: Session, settings: Settings, *args: P.args, **kwargs: P.kwargs) -> T:
            value = func(session, settings, *args, **kwargs)
            named = target(*args, **kwargs) if target is not None else _describe(args)
            record(session, action, named)
            return value

        return inner

    return wrap


def _describe(args: tuple[Any, ...]) -> str:
    return " ".join(str(a) for a in args if isinstance(a, str | int))


def entries(
    session: Session,
    *,
    before: int | None = None,
    actor: str = "",
    action: str = "",
    limit: int = 50,
) -> list[AuditEntry]:
    """Newest first, `limit` at most, older than id `before` (keyset: no OFFSET over a
    log that only grows); `actor` exact, `action` a prefix ("sends" or "sends.pause")."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        # One literal pattern (not `param || '%'`): PostgreSQL's pattern index can use it.
        pattern = action.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
        query = query.where(AuditEntry.action.like(pattern, escape="/"))
    return list(session.scalars(query))
