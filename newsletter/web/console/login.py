"""/console/login and /console/logout."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter.accounts import sessions
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.web import csrf
from newsletter.web.console.core import COOKIE, SignedIn, cookie_secure, render, safe_next
from newsletter.web.ratelimit import RateLimiter

router = APIRouter()
IP_WINDOW = 300
ACCOUNT_WINDOW = 900


def _login_page(
    request: Request, status: int = 200, error: str = "", email: str = "", token: str = ""
) -> HTMLResponse:
    settings = get_settings()
    token = token or request.cookies.get(csrf.COOKIE) or csrf.new_token(settings.secret)
    response = render(
        request,
        "login.html",
        status=status,
        error=error,
        email=email,
        login_csrf=token,
        next=safe_next(request.query_params.get("next")),
    )
    response.set_cookie(
        csrf.COOKIE, token, httponly=True, samesite="lax", secure=cookie_secure(), max_age=86400
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _login_page(request)


def _login(email: str, password: str, ip: str) -> sessions.Login:
    with session_scope() as session:
        return sessions.login(session, get_settings(), email, password, ip)


@router.post("/login")
async def login_submit(request: Request) -> Response:
    settings = get_settings()
    form = await request.form()
    email = str(form.get("email", ""))[:320].strip()
    password = str(form.get("password", ""))
    if not csrf.valid(settings.secret, request.cookies.get(csrf.COOKIE), str(form.get("csrf", ""))):
        return _login_page(request, 403, "The form expired; please log in again.", email)
    limiter: RateLimiter = request.app.state.limiter
    ip = request.client.host if request.client else "unknown"
    if not limiter.hit(f"login-ip:{ip}", settings.login_limit_ip, IP_WINDOW):
        return _login_page(request, 429, "Too many attempts from here; wait a few minutes.", email)
    account = f"login-account:{email.lower()}"
    # Checked before the password: once an account's failures reach the limit, even the
    # right password waits, or the limit would only slow the guesses down.
    if limiter.spent(account, settings.login_limit_account, ACCOUNT_WINDOW):
        return _login_page(request, 429, "Too many failed attempts; wait 15 minutes.", email)
    try:
        done = await run_in_threadpool(_login, email, password, ip)
    except InvalidInput as exc:
        if not limiter.hit(account, settings.login_limit_account, ACCOUNT_WINDOW):
            return _login_page(request, 429, "Too many failed attempts; wait 15 minutes.", email)
        return _login_page(request, 401, exc.message, email)
    response = RedirectResponse(safe_next(str(form.get("next", ""))), status_code=303)
    response.set_cookie(
        COOKIE,
        done.cookie,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(),
        max_age=int(settings.console_session_hours * 3600),
        path="/",
    )
    return response


@router.get("/logout", response_class=HTMLResponse)
def logout_form(request: Request, current: SignedIn) -> HTMLResponse:
    return render(request, "logout.html")


def _logout(cookie: str | None) -> None:
    with session_scope() as session:
        sessions.logout(session, get_settings(), cookie)


@router.post("/logout")
async def logout(request: Request, current: SignedIn) -> Response:
    await run_in_threadpool(_logout, request.cookies.get(COOKIE))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=cookie_secure())
    return response
