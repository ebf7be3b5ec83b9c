"""What every console page shares: the logged-in person, roles, CSRF, rendering, actions.

* `signed_in` (a dependency) finds the live session from the cookie; without one a page
  is sent to /console/login (303), an event stream or fetch gets 401. On every method
  but GET/HEAD the session's CSRF token must come back, as the form field `csrf` or the
  header X-CSRF-Token, else 403 and nothing happens.
* `allowed(capability)` is the same plus the role check (403, accounts/roles.py); pages
  show a button only where `can(...)` says the person may press it.
* `act(...)` runs one domain action as the logged-in person (so the audit log names
  them), turning a domain error into the message the page shows.
* `render(...)` renders templates/web/console/*.html with what the layout needs.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from newsletter import audit
from newsletter.accounts import sessions
from newsletter.accounts.roles import Capability, can
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.effects import Done
from newsletter.errors import InvalidInput, Unavailable
from newsletter.templating import web_env
from newsletter.web.pages import secure
from workers.gateway import BrokerUnavailable, perform

T = TypeVar("T")
COOKIE = "nl_console"
PREFIX = "/console"


class LoginRequired(Exception):
    """No live session: the app's handler sends a page to the login form."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class ActionFailed(Exception):
    """A domain action refused (bad input, a conflict, a role) or a service is down: the
    page shows `message` with `status`."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def _lookup(cookie: str | None) -> sessions.Current | None:
    with session_scope() as session:
        return sessions.current(session, get_settings(), cookie)


async def signed_in(request: Request) -> sessions.Current:
    """The live session (async: the actor it sets is the context the route runs in)."""
    current = await run_in_threadpool(_lookup, request.cookies.get(COOKIE))
    if current is None:
        wants_html = "text/html" in request.headers.get("accept", "") or request.method == "GET"
        if wants_html and request.method in ("GET", "HEAD") and not _is_stream(request):
            raise LoginRequired(request.url.path)
        raise HTTPException(401, "Log in first.")
    if request.method not in ("GET", "HEAD"):
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            content_type = request.headers.get("content-type", "")
            if content_type.startswith(("application/x-www-form-urlencoded", "multipart/")):
                form = await request.form()  # starlette keeps it: the route reads it again
                value = form.get("csrf")
                sent = value if isinstance(value, str) else None
        if not sent or not hmac.compare_digest(sent.encode(), current.csrf.encode()):
            raise HTTPException(403, "This form expired or came from another site; reload it.")
    audit.set_actor(current.actor)
    request.state.current = current
    return current


def _is_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def allowed(capability: Capability) -> Callable[[Request], Awaitable[sessions.Current]]:
    """A dependency: signed in and the role has `capability`, else 403."""

    async def check(request: Request) -> sessions.Current:
        current = await signed_in(request)
        if not can(current.actor.role, capability):
            raise HTTPException(
                403, f"Your role ({current.actor.role}) may not do this; it needs {capability}."
            )
        return current

    check.__name__ = f"allowed_{capability}"
    return check


# Route parameters: `current: SignedIn` or `current: Annotated[Current, requires(cap)]`.
SignedIn = Annotated[sessions.Current, Depends(signed_in)]


def requires(capability: Capability) -> Any:
    return Depends(allowed(capability))


def act(action: Callable[..., Done[T]], *args: Any, **kwargs: Any) -> T:
    """Run one domain action (one transaction, then its effects) as the acting person
    set by `signed_in`. Call it from a sync route (FastAPI runs those in a thread that
    carries the request's context)."""
    try:
        return perform(action, *args, **kwargs)
    except InvalidInput as exc:
        from newsletter.errors import Conflict, Forbidden, NotFound

        status = (
            404
            if isinstance(exc, NotFound)
            else 409
            if isinstance(exc, Conflict)
            else 403
            if isinstance(exc, Forbidden)
            else 422
        )
        raise ActionFailed(status, exc.message, exc.field) from None
    except (Unavailable, BrokerUnavailable) as exc:
        raise ActionFailed(503, str(exc)) from None


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A console page; `current` and `can` are always there for the layout and buttons."""
    current: sessions.Current | None = getattr(request.state, "current", None)
    role = current.actor.role if current else ""
    html = (
        web_env()
        .get_template(f"console/{template}")
        .render(
            request=request,
            current=current,
            csrf=current.csrf if current else "",
            can=lambda capability: bool(current) and can(role, Capability(capability)),
            path=request.url.path,
            **context,
        )
    )
    response = secure(HTMLResponse(html, status_code=status))
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(path: str, message: str | None = None) -> RedirectResponse:
    """303 to a console page (after a form POST), with an optional one-line notice."""
    from urllib.parse import urlencode

    joiner = "&" if "?" in path else "?"
    target = path if message is None else f"{path}{joiner}{urlencode({'notice': message})}"
    return RedirectResponse(target, status_code=303)


def safe_next(value: str | None) -> str:
    """Where to go after login: only a console path of this site (no open redirect)."""
    if value and value.startswith(PREFIX) and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX


def cookie_secure() -> bool:
    return get_settings().base_url.startswith("https://")
