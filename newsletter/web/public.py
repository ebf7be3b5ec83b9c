"""Reader-facing pages: subscribe, confirm, unsubscribe. A GET never changes anything."""

from __future__ import annotations

import json

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter.config import get_settings
from newsletter.errors import InvalidInput
from newsletter.subscriptions import actions
from newsletter.subscriptions.consent import (
    ConsentRecord,
)
from newsletter.subscriptions.tokens import (
    ConfirmClaim,
    TokenExpired,
    TokenInvalid,
)
from newsletter.web import csrf
from newsletter.web.pages import error_page, page
from newsletter.web.ratelimit import RateLimiter
from workers.gateway import perform

router = APIRouter()

MAX_BODY = 16 * 1024
# Sign-ups at once on a server database (see _threads); below its pool of 10 connections.
SERVER_DB_THREADS = 8
HONEYPOT = "website"
BAD_LINK = (
    "This link is not valid. It may have been cut short when it was copied, "
    "or replaced by a newer one. Please use the link in the most recent e-mail."
)


def _lists() -> list[dict[str, str]]:
    return perform(actions.list_choices)


def _form_page(
    request: Request,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    settings = get_settings()
    token = request.cookies.get(csrf.COOKIE)
    if not token:
        token = csrf.new_token(settings.secret)
    values = values or {}
    lists = _lists()
    chosen = values.get("list") or request.query_params.get("list") or ""
    if not chosen and len(lists) == 1:
        chosen = lists[0]["slug"]
    response = page(
        request,
        "subscribe.html",
        status=status,
        lists=lists,
        chosen=chosen,
        values=values,
        errors=errors or {},
        csrf_token=token,
        consent_version=settings.consent_version,
    )
    response.set_cookie(
        csrf.COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https://"),
        max_age=86400,
    )
    return response


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request) -> HTMLResponse:
    slug = request.query_params.get("list", "")
    if slug and slug not in {item["slug"] for item in _lists()}:
        # Never the default list in its place: the reader asked for another one.
        return page(request, "no_such_list.html", status=404, slug=slug)
    return _form_page(request)


async def _read_fields(request: Request) -> tuple[dict[str, str], bool]:
    """The submitted fields and whether they came as JSON (the API variant)."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput("form", "The submission is too large.")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise InvalidInput("form", "The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise InvalidInput("form", "The body must be a JSON object.")
        return {k: v if isinstance(v, str) else "" for k, v in data.items()}, True
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}, False


@router.post("/subscribe")
async def subscribe_submit(request: Request) -> Response:
    try:
        fields, as_json = await _read_fields(request)
    except InvalidInput as exc:
        return JSONResponse({"detail": [{"field": exc.field, "message": exc.message}]}, 422)
    # Redis, the database and the broker are blocking calls: in the event loop they would
    # serve one request at a time, so they run in threads that overlap their waits.
    return await anyio.to_thread.run_sync(
        _subscribe, request, fields, as_json, limiter=_threads(get_settings().database)
    )


def _subscribe(request: Request, fields: dict[str, str], as_json: bool) -> Response:
    settings = get_settings()
    limiter: RateLimiter = request.app.state.limiter
    values = {k: fields.get(k, "") for k in ("email", "name", "list")}
    ip = request.client.host if request.client else "unknown"
    csrf_ok = as_json or csrf.valid(
        settings.secret, request.cookies.get(csrf.COOKIE), fields.get("csrf_token")
    )
    honeypot = bool(fields.get(HONEYPOT))
    email_key = values["email"].strip().lower()
    # Both limits in one round trip, counted as if checked in turn: the address counts
    # only for a request that passed the IP limit, the CSRF check and the honeypot.
    hits = [(f"ip:{ip}", settings.subscribe_limit_ip, settings.subscribe_limit_ip_window)]
    if csrf_ok and not honeypot and email_key:
        hits.append(
            (
                f"addr:{email_key}",
                settings.subscribe_limit_address,
                settings.subscribe_limit_address_window,
            )
        )
    over = limiter.hit_each(hits)
    if over == 0:
        return _too_many(request, as_json)
    if not csrf_ok:
        return error_page(
            request,
            403,
            "Please try again",
            "This form expired or was sent from another site. Reload the page and submit it again.",
        )
    if honeypot:
        # Bots fill every field; show them the ordinary page and do nothing.
        return _accepted(request, as_json)
    if over is not None:
        return _too_many(request, as_json)

    consent = ConsentRecord(
        ip=ip,
        user_agent=request.headers.get("user-agent"),
        source="api" if as_json else "form",
        text_version=settings.consent_version,
    )
    try:
        perform(
            actions.subscribe_reader,
            email=values["email"],
            name=values["name"],
            list_slug=values["list"],
            consent=consent,
        )
    except InvalidInput as exc:
        if as_json:
            return JSONResponse({"detail": [{"field": exc.field, "message": exc.message}]}, 422)
        return _form_page(request, 422, values, {exc.field: exc.message})
    return _accepted(request, as_json)


_THREADS: dict[bool, anyio.CapacityLimiter] = {}


def _threads(database: str) -> anyio.CapacityLimiter:
    """How many sign-ups run at once. SQLite takes one writer at a time and its busy handler
    sleeps in steps of up to 100 ms, so they queue here instead; a server database gets a
    few, enough to overlap round trips without the threads fighting over the GIL."""
    sqlite = database.startswith("sqlite")
    if sqlite not in _THREADS:
        _THREADS[sqlite] = anyio.CapacityLimiter(1 if sqlite else SERVER_DB_THREADS)
    return _THREADS[sqlite]


def _accepted(request: Request, as_json: bool) -> Response:
    # One neutral answer for new, pending and already confirmed addresses alike.
    if as_json:
        return JSONResponse({"status": "pending", "message": "Check your inbox to confirm."}, 202)
    return page(request, "subscribe_done.html")


def _too_many(request: Request, as_json: bool) -> Response:
    message = "Too many sign-up attempts. Please wait a few minutes and try again."
    if as_json:
        return JSONResponse({"detail": message}, 429, headers={"Retry-After": "60"})
    response = error_page(request, 429, "Slow down, please", message)
    response.headers["Retry-After"] = "60"
    return response


def _expired_page(request: Request, token: str) -> HTMLResponse:
    return page(request, "confirm_expired.html", status=410, token=token)


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> HTMLResponse:
    try:
        ctx = perform(actions.confirmation_view, token)
    except TokenExpired:
        return _expired_page(request, token)
    except TokenInvalid:
        return error_page(request, 400, "Link not valid", BAD_LINK)
    return page(request, "confirm.html", **ctx)


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm_submit(request: Request, token: str) -> HTMLResponse:
    try:
        ctx = perform(actions.confirm_link, token)
    except TokenExpired:
        return _expired_page(request, token)
    except TokenInvalid:
        return error_page(request, 400, "Link not valid", BAD_LINK)
    return page(request, "confirmed.html", **ctx)


@router.post("/confirm/{token}/renew", response_class=HTMLResponse)
def confirm_renew(request: Request, token: str) -> HTMLResponse:
    try:
        perform(actions.confirmation_view, token)
        return error_page(request, 400, "Link still valid", "This link has not expired: use it.")
    except TokenExpired as exc:
        claim = exc.payload
        assert isinstance(claim, ConfirmClaim)
        perform(actions.renew_link, claim)
    except TokenInvalid:
        return error_page(request, 400, "Link not valid", BAD_LINK)
    return page(request, "subscribe_done.html")


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    try:
        ctx = perform(actions.unsubscribe_view, token)
    except TokenInvalid:
        return error_page(request, 400, "Link not valid", BAD_LINK)
    return page(request, "unsubscribe.html", **ctx)


@router.post("/unsubscribe/{token}")
async def unsubscribe_submit(request: Request, token: str) -> Response:
    """The page's button and RFC 8058 one-click from mailbox providers: no cookie needed."""
    body = (await request.body())[:MAX_BODY]
    one_click = b"List-Unsubscribe=One-Click" in body
    try:
        done = await run_in_threadpool(perform, actions.unsubscribe_link, token)
    except TokenInvalid:
        if one_click:
            return PlainTextResponse("Unknown or invalid unsubscribe link.", 400)
        return error_page(request, 400, "Link not valid", BAD_LINK)
    if one_click:
        return PlainTextResponse("Unsubscribed.")
    return page(request, "unsubscribed.html", **done)
