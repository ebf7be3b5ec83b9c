"""Who is calling the admin API, and may they: bearer tokens and roles.

A request carries `Authorization: Bearer TOKEN`: ADMIN_TOKEN (the owner's bootstrap
token) or a user's API token (`newsletter users token EMAIL`). Reading needs any role;
each kind of change needs the capability `needed_for` names (accounts/roles.py), else
403. The caller becomes the acting person of the request (audit.acting_as), so every
action it runs is written to the audit log under its name.
"""

from __future__ import annotations

import hmac

from fastapi import Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from newsletter import audit
from newsletter.accounts.roles import Capability, can
from newsletter.accounts.sessions import token_actor
from newsletter.config import get_settings
from newsletter.db import session_scope

BOOTSTRAP = audit.Actor("admin-token", "api", "owner")
# Path prefix → what a change (any method but GET/HEAD) under it needs; first match wins.
CHANGES: tuple[tuple[str, Capability], ...] = (
    ("/api/digests/test", Capability.test_send),
    ("/api/digests", Capability.digests),
    ("/api/stories", Capability.stories),
    ("/api/feeds", Capability.stories),
    ("/api/lists", Capability.lists),
    ("/api/segments", Capability.lists),
    ("/api/subscribers", Capability.subscribers),
    ("/api/bounces", Capability.subscribers),
    ("/api/webhooks", Capability.subscribers),  # outgoing webhooks: readers' addresses
    ("/api/sends", Capability.send),
    ("/api/users", Capability.users),
)


def needed_for(method: str, path: str) -> Capability:
    if path == "/api/users" or path.startswith("/api/users/"):
        return Capability.users  # who the staff are and their tokens is not for every reader
    if method in ("GET", "HEAD"):
        return Capability.read
    for prefix, capability in CHANGES:
        if path == prefix or path.startswith(prefix + "/"):
            return capability
    return Capability.owners  # a change not in the table: only an owner, until it is


def _lookup(token: str) -> audit.Actor | None:
    with session_scope() as session:
        return token_actor(session, token)


async def require_admin(request: Request, authorization: str | None = Header(default=None)) -> None:
    """Async so that the actor set here is the context the (threaded) route runs in."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    actor: audit.Actor | None = None
    if scheme.lower() == "bearer" and token:
        if hmac.compare_digest(token.encode(), get_settings().admin.encode()):
            actor = BOOTSTRAP
        else:
            actor = await run_in_threadpool(_lookup, token)
    if actor is None:
        raise HTTPException(401, "A valid admin token is required.", {"WWW-Authenticate": "Bearer"})
    needed = needed_for(request.method, request.url.path)
    if not can(actor.role, needed):
        raise HTTPException(403, f"Your role ({actor.role}) may not do this; it needs {needed}.")
    audit.set_actor(actor)
    request.state.actor = actor
