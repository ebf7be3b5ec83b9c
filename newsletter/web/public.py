"""Reader-facing pages: subscribe, confirm, unsubscribe. A GET never changes anything."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter import i18n
from newsletter.config import Settings, get_settings
from newsletter.db import database_url
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
from newsletter.web.pages import (
    content_security_policy,
    error_page,
    page,
    page_language,
    secure,
)
from newsletter.web.ratelimit import RateLimiter
from workers.gateway import perform

router = APIRouter()

MAX_BODY = 16 * 1024
# Sign-ups at once on a server database (see _threads); below its pool of 10 connections.
SERVER_DB_THREADS = 8
HONEYPOT = "website"
BAD_LINK = i18n.N_(
    "This link is not valid. It may have been cut short when it was copied, "
    "or replaced by a newer one. Please use the link in the most recent e-mail."
)
# Shown through error_page, which translates them.
i18n.N_("Link not valid")
i18n.N_("Link still valid")
i18n.N_("This link has not expired: use it.")
i18n.N_("Please try again")
i18n.N_("This form expired or was sent from another site. Reload the page and submit it again.")
i18n.N_("Slow down, please")
i18n.N_("Too many sign-up attempts. Please wait a few minutes and try again.")


# Fills the form's hidden time zone field; allowed by its hash in the page's CSP.
TIMEZONE_SCRIPT = (
    'try{document.getElementById("timezone").value='
    'Intl.DateTimeFormat().resolvedOptions().timeZone||""}catch(e){}'
)


def _lists() -> list[dict[str, Any]]:
    return perform(actions.list_choices)


def _fields_of(lists: list[dict[str, Any]], chosen: str) -> list[dict[str, Any]]:
    """The extra fields to show: the chosen list's, or every list's (once by name) when
    the reader has not chosen yet; the server checks the ones of the list sent."""
    picked = [item for item in lists if item["slug"] == chosen] or lists
    seen: dict[str, dict[str, Any]] = {}
    for item in picked:
        for field in item.get("form_fields") or []:
            seen.setdefault(str(field["name"]), field)
    return list(seen.values())


def _form_page(
    request: Request,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    language: str | None = None,
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
    code = language or page_language(request)
    response = page(
        request,
        "subscribe.html",
        status=status,
        language=code,
        lists=lists,
        chosen=chosen,
        form_fields=_fields_of(lists, chosen),
        values=values,
        errors=errors or {},
        csrf_token=token,
        consent_version=settings.consent_version,
        timezone_script=TIMEZONE_SCRIPT,
    )
    response.headers["Content-Security-Policy"] = content_security_policy([TIMEZONE_SCRIPT])
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


ATTRIBUTE = "attributes."  # the form's extra fields: attributes.<name>


async def _read_fields(request: Request) -> tuple[dict[str, str], bool, dict[str, Any]]:
    """The submitted fields, whether they came as JSON (the API variant), and the
    attributes (the form's `attributes.<name>` fields, or the JSON `attributes` object;
    checked by the domain against the list's form fields)."""
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
        attributes = data.pop("attributes", None) or {}
        if not isinstance(attributes, dict):
            raise InvalidInput("attributes", "attributes must be a JSON object of name: value.")
        return {k: v if isinstance(v, str) else "" for k, v in data.items()}, True, attributes
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        # What request.form() gives for such a body (the last value of a repeated field,
        # bytes as Latin-1 around UTF-8 escapes), without its streaming parser.
        fields = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    else:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    attributes = {
        k[len(ATTRIBUTE) :]: v for k, v in fields.items() if k.startswith(ATTRIBUTE) and v.strip()
    }
    return fields, False, attributes


@router.post("/subscribe")
async def subscribe_submit(request: Request) -> Response:
    try:
        fields, as_json, attributes = await _read_fields(request)
    except InvalidInput as exc:
        return JSONResponse({"detail": [{"field": exc.field, "message": exc.message}]}, 422)
    # Redis, the database and the broker are blocking calls: in the event loop they would
    # serve one request at a time, so they run in threads that overlap their waits.
    return await asyncio.get_running_loop().run_in_executor(
        _threads(database_url()), partial(_subscribe, request, fields, as_json, attributes)
    )


def _zone(value: str | None) -> str | None:
    """The browser's time zone from the hidden field, or None (no JS, or nonsense: the
    list's own zone applies then; never an error for the reader)."""
    value = (value or "").strip()
    if not value or len(value) > 64:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return value


def _subscribe(
    request: Request, fields: dict[str, str], as_json: bool, attributes: dict[str, Any]
) -> Response:
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
    # The language the reader reads the page in (its ?lang= choice, carried by the form)
    # or their browser's; the confirmation and everything after come in it.
    language = i18n.supported(fields.get("language"), settings) or page_language(request)
    try:
        perform(
            actions.subscribe_reader,
            email=values["email"],
            name=values["name"],
            list_slug=values["list"],
            consent=consent,
            attributes=attributes,
            language=language,
            timezone=_zone(fields.get("timezone")),
        )
    except InvalidInput as exc:
        if as_json:
            return JSONResponse({"detail": [{"field": exc.field, "message": exc.message}]}, 422)
        # A required field of the list left empty is the reader's to fix: 400, the
        # message beside it; anything else wrong with the form as before.
        status = 422 if exc.field in values else 400
        shown = {**values, **{ATTRIBUTE + k: str(v) for k, v in attributes.items()}}
        return _form_page(request, status, shown, {exc.field: exc.message}, language)
    return _accepted(request, as_json)


_THREADS: dict[bool, ThreadPoolExecutor] = {}


def _threads(database: str) -> ThreadPoolExecutor:
    """The threads sign-ups run in, so how many run at once. SQLite takes one writer at a
    time and its busy handler sleeps in steps of up to 100 ms, so they queue here instead;
    a server database gets a few, enough to overlap round trips without the threads
    fighting over the GIL. A pool of their own: cheaper per call than anyio's limiter and
    thread hand-off."""
    sqlite = database.startswith("sqlite")
    if sqlite not in _THREADS:
        _THREADS[sqlite] = ThreadPoolExecutor(
            1 if sqlite else SERVER_DB_THREADS, thread_name_prefix="subscribe"
        )
    return _THREADS[sqlite]


def _accepted(request: Request, as_json: bool) -> Response:
    # One neutral answer for new, pending and already confirmed addresses alike.
    if as_json:
        return JSONResponse({"status": "pending", "message": "Check your inbox to confirm."}, 202)
    return _done_page(request)


# The "check your inbox" page as rendered, per settings, language and query string: it
# depends on nothing else, and rendering it was a tenth of a sign-up's CPU.
_DONE: tuple[Settings, dict[tuple[str, bytes], bytes]] | None = None
_DONE_PAGES = 64  # languages x query strings kept; others are rendered each time


def _done_page(request: Request) -> HTMLResponse:
    global _DONE
    settings = get_settings()
    if _DONE is None or _DONE[0] is not settings:
        _DONE = (settings, {})
    cache = _DONE[1]
    code = page_language(request)
    key = (code, request.scope.get("query_string", b""))
    body = cache.get(key)
    if body is None:
        response = page(request, "subscribe_done.html", language=code)
        if len(cache) < _DONE_PAGES:
            cache[key] = bytes(response.body)
        return response
    response = HTMLResponse(body)
    response.headers["Content-Language"] = code
    return secure(response)


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


# The preference centre's pages live in their own module, served by this router.
from newsletter.web import preferences as _preferences  # noqa: E402

router.include_router(_preferences.router)
