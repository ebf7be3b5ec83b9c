"""The preference centre's pages: /preferences (ask for a link by address) and
/preferences/{token} (a reader's lists, name, language, frequency, data and erasure).

A GET never changes anything. Every POST carries the double-submit CSRF token of the
sign-up form (web/csrf.py: a signed value in a cookie and the same in a field): the
link's token in the URL says whose page it is, the CSRF token that the form was sent
from this page and not from another site that learned the link.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter import i18n
from newsletter.config import get_settings
from newsletter.errors import InvalidInput
from newsletter.subscriptions import preferences
from newsletter.subscriptions.consent import ConsentRecord
from newsletter.subscriptions.tokens import TokenExpired, TokenInvalid
from newsletter.web import csrf
from newsletter.web.pages import error_page, page, page_language
from newsletter.web.ratelimit import RateLimiter
from workers.gateway import perform

router = APIRouter()

MAX_BODY = 16 * 1024
NOT_FOUND = i18n.N_("Link not valid")
NOT_FOUND_TEXT = i18n.N_(
    "This link is not valid: it may have been cut short when it was copied, or the "
    "subscriptions it was for no longer exist. You can ask for a new link."
)
FORM_EXPIRED = i18n.N_("Please try again")
FORM_EXPIRED_TEXT = i18n.N_(
    "This form expired or was sent from another site. Reload the page and submit it again."
)
TOO_MANY = i18n.N_("Slow down, please")
TOO_MANY_TEXT = i18n.N_("Too many requests. Please wait a few minutes and try again.")


def _token(request: Request) -> str:
    return request.cookies.get(csrf.COOKIE) or csrf.new_token(get_settings().secret)


def _with_cookie(response: HTMLResponse, token: str) -> HTMLResponse:
    settings = get_settings()
    response.set_cookie(
        csrf.COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https://"),
        max_age=86400,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def _form(request: Request) -> dict[str, str]:
    if len(await request.body()) > MAX_BODY:
        raise InvalidInput("form", "The submission is too large.")
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _csrf_ok(request: Request, form: dict[str, str]) -> bool:
    return csrf.valid(
        get_settings().secret, request.cookies.get(csrf.COOKIE), form.get("csrf_token")
    )


async def _refused_form(request: Request) -> HTMLResponse | None:
    """The error page for a data button's POST that is too large or lacks its CSRF
    token; None when it may go on (the buttons carry nothing else)."""
    try:
        form = await _form(request)
    except InvalidInput as exc:
        return error_page(request, 413, "Error", exc.message)
    if not _csrf_ok(request, form):
        return error_page(request, 403, FORM_EXPIRED, FORM_EXPIRED_TEXT)
    return None


def _bad_link(request: Request) -> HTMLResponse:
    return error_page(request, 404, NOT_FOUND, NOT_FOUND_TEXT)


def _expired(request: Request) -> HTMLResponse:
    return page(request, "preferences_expired.html", status=410)


def _preferences_page(
    request: Request, token: str, ctx: dict[str, object], status: int = 200, **extra: object
) -> HTMLResponse:
    settings = get_settings()
    own = str(ctx.get("language") or "") or None
    language = page_language(request, own)
    csrf_token = _token(request)
    choices = [(code, i18n.language_name(code)) for code in settings.language_codes]
    shown = {k: v for k, v in {**ctx, **extra}.items() if k != "language"}
    response = page(
        request,
        "preferences.html",
        status=status,
        language=language,
        token=token,
        csrf_token=csrf_token,
        language_choices=choices,
        reader_language=own or language,
        **shown,
    )
    return _with_cookie(response, csrf_token)


# Asking for a link by address -------------------------------------------------------------


@router.get("/preferences", response_class=HTMLResponse)
def ask_page(request: Request) -> HTMLResponse:
    token = _token(request)
    return _with_cookie(page(request, "preferences_ask.html", csrf_token=token), token)


@router.post("/preferences", response_class=HTMLResponse)
async def ask_submit(request: Request) -> Response:
    try:
        form = await _form(request)
    except InvalidInput as exc:
        return error_page(request, 413, "Error", exc.message)
    return await run_in_threadpool(_ask, request, form)


def _ask(request: Request, form: dict[str, str]) -> Response:
    """The same answer for every address; a mail only to a known reader; counted per IP
    and per address like the sign-up form."""
    settings = get_settings()
    limiter: RateLimiter = request.app.state.limiter
    ip = request.client.host if request.client else "unknown"
    csrf_ok = _csrf_ok(request, form)
    email_key = form.get("email", "").strip().lower()[:320]
    hits = [(f"pref-ip:{ip}", settings.subscribe_limit_ip, settings.subscribe_limit_ip_window)]
    if csrf_ok and email_key:
        hits.append(
            (
                f"pref-addr:{email_key}",
                settings.subscribe_limit_address,
                settings.subscribe_limit_address_window,
            )
        )
    over = limiter.hit_each(hits)
    if over == 0:
        return _too_many(request)
    if not csrf_ok:
        return error_page(request, 403, FORM_EXPIRED, FORM_EXPIRED_TEXT)
    if over is None and email_key:
        language = i18n.supported(form.get("language")) or page_language(request)
        perform(preferences.ask_link, form.get("email", ""), language)
    # Over the per-address limit: the same page, and no mail (nobody can flood a mailbox).
    return page(request, "preferences_sent.html")


def _too_many(request: Request) -> HTMLResponse:
    response = error_page(request, 429, TOO_MANY, TOO_MANY_TEXT)
    response.headers["Retry-After"] = "60"
    return response


# The reader's page ------------------------------------------------------------------------


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str) -> HTMLResponse:
    try:
        ctx = perform(preferences.page_view, token)
    except TokenExpired:
        return _expired(request)
    except TokenInvalid:
        return _bad_link(request)
    return _preferences_page(request, token, ctx)


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def preferences_submit(request: Request, token: str) -> Response:
    try:
        form = await _form(request)
    except InvalidInput as exc:
        return error_page(request, 413, "Error", exc.message)
    return await run_in_threadpool(_save, request, token, form)


def _save(request: Request, token: str, form: dict[str, str]) -> Response:
    settings = get_settings()
    if not _csrf_ok(request, form):
        return error_page(request, 403, FORM_EXPIRED, FORM_EXPIRED_TEXT)
    consent = ConsentRecord(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        source="preferences",
        text_version=settings.consent_version,
    )
    try:
        done = perform(preferences.save_page, token, form, consent)
    except TokenExpired:
        return _expired(request)
    except TokenInvalid:
        return _bad_link(request)
    except InvalidInput as exc:
        try:
            ctx = perform(preferences.page_view, token)
        except (TokenExpired, TokenInvalid):
            return _bad_link(request)
        return _preferences_page(request, token, ctx, status=400, error=exc.message)
    return _preferences_page(request, token, done, saved=True)


@router.post("/preferences/{token}/export")
async def export_data(request: Request, token: str) -> Response:
    refused = await _refused_form(request)
    if refused is not None:
        return refused
    try:
        data = await run_in_threadpool(perform, preferences.export_page, token)
    except TokenExpired:
        return _expired(request)
    except TokenInvalid:
        return _bad_link(request)
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="my-newsletter-data.json"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/preferences/{token}/erase", response_class=HTMLResponse)
def erase_page(request: Request, token: str) -> HTMLResponse:
    try:
        ctx = perform(preferences.page_view, token)
    except TokenExpired:
        return _expired(request)
    except TokenInvalid:
        return _bad_link(request)
    csrf_token = _token(request)
    language = page_language(request, str(ctx.get("language") or "") or None)
    response = page(
        request,
        "preferences_erase.html",
        language=language,
        token=token,
        email=ctx["email"],
        csrf_token=csrf_token,
    )
    return _with_cookie(response, csrf_token)


@router.post("/preferences/{token}/erase", response_class=HTMLResponse)
async def erase_submit(request: Request, token: str) -> Response:
    refused = await _refused_form(request)
    if refused is not None:
        return refused
    try:
        ctx = await run_in_threadpool(perform, preferences.page_view, token)
        language = page_language(request, str(ctx.get("language") or "") or None)
        await run_in_threadpool(perform, preferences.erase_page, token)
    except TokenExpired:
        return _expired(request)
    except TokenInvalid:
        return _bad_link(request)
    return page(request, "preferences_erased.html", language=language)
