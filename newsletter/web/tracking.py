"""Tracked links and the open pixel: GET /c/{reader}/{link}, GET /o/{reader}.gif; and the
sunset question's page, GET/POST /sunset/{token}.

Both codes are checked on their own (engagement/codes.py), the delivery must belong to
the link's digest, and the target comes from digest_links, never from the URL: a forged,
altered or unknown link gets a 404 page that leads nowhere, and there is no open
redirect. The redirect is answered even when counting fails (logged): the reader's page
matters more than our statistics. Responses carry Referrer-Policy: no-referrer so the
reader code never reaches the site the reader goes to, and no-store so no cache keeps
them. Nothing of the request (address, user agent) is stored (engagement/machine.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.config import get_settings
from newsletter.engagement import machine, sunset
from newsletter.engagement.codes import read_link_code, read_reader_code
from newsletter.engagement.record import Click, record_click, record_open, resolve_click
from newsletter.subscriptions.tokens import TokenInvalid, read_preferences_token
from newsletter.web.pages import error_page, page
from workers.gateway import perform

log = logging.getLogger(__name__)
router = APIRouter()

# The smallest transparent GIF (43 bytes).
GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
NO_STORE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    "Referrer-Policy": "no-referrer",
}
GONE = (
    "This link is not valid. It may have been cut short when it was copied. "
    "The newsletter itself links to its stories directly."
)


def _seen(request: Request, kind: str, delivered_at: datetime | None) -> machine.Request:
    return machine.Request(
        kind=kind,
        method=request.method,
        user_agent=request.headers.get("user-agent", "")[:512],
        address=request.client.host if request.client else None,
        has_cookies=bool(request.headers.get("cookie")),
        at=datetime.now(UTC),
        delivered_at=delivered_at,
    )


def _not_found(request: Request) -> HTMLResponse:
    response = error_page(request, 404, "Link not found", GONE)
    response.headers.update(NO_STORE)
    return response


@router.api_route("/c/{reader}/{link}", methods=["GET", "HEAD"], include_in_schema=False)
def click(request: Request, reader: str, link: str) -> Response:
    settings = get_settings()
    delivery_id = read_reader_code(settings.secret, reader)
    found = read_link_code(settings.secret, link)
    if delivery_id is None or found is None:
        return _not_found(request)
    digest_id, number = found
    target: Click | None = perform(resolve_click, delivery_id, digest_id, number)
    if target is None:
        return _not_found(request)
    if target.subscriber_id is not None:
        try:
            perform(record_click, target, _seen(request, "click", target.delivered_at))
        except Exception:  # noqa: BLE001 - counting never costs the reader the page
            log.exception("click on digest %s link %s not recorded", digest_id, number)
    return RedirectResponse(target.url, status_code=302, headers=NO_STORE)


@router.api_route("/o/{reader}.gif", methods=["GET", "HEAD"], include_in_schema=False)
def open_pixel(request: Request, reader: str) -> Response:
    """Always the image (a broken image in a reader's mail helps nobody); an open is
    counted only for a genuine reader code of a list with track_opens on."""
    settings = get_settings()
    delivery_id = read_reader_code(settings.secret, reader)
    if delivery_id:
        try:
            perform(record_open, delivery_id, _seen(request, "open", None))
        except Exception:  # noqa: BLE001 - the pixel is answered whatever happens
            log.exception("open of delivery %s not recorded", delivery_id)
    return Response(GIF, media_type="image/gif", headers=NO_STORE)


# Sunset: "Still want <list>?" (engagement/sunset.py). The mail's button leads here; the
# GET changes nothing (a link scanner opening it keeps nobody subscribed), the POST
# answers. The token is the mail's preference token (the subscription's own capability).

SUNSET_BAD_LINK = (
    "This link is not valid. It may have been cut short when it was copied. "
    "Please use the link in the most recent e-mail."
)


def _sunset_subscription(token: str) -> int | None:
    try:
        return read_preferences_token(get_settings().secret, token)
    except TokenInvalid:
        return None


@router.get("/sunset/{token}", response_class=HTMLResponse, include_in_schema=False)
def sunset_page(request: Request, token: str) -> HTMLResponse:
    subscription_id = _sunset_subscription(token)
    view = None if subscription_id is None else perform(sunset.keep_view, subscription_id)
    if view is None:
        return error_page(request, 404, "Link not valid", SUNSET_BAD_LINK)
    return page(request, "sunset.html", language=view.language, view=view, token=token, kept=False)


@router.post("/sunset/{token}", response_class=HTMLResponse, include_in_schema=False)
def sunset_keep(request: Request, token: str) -> HTMLResponse:
    subscription_id = _sunset_subscription(token)
    view = None if subscription_id is None else perform(sunset.keep, subscription_id)
    if view is None:
        return error_page(request, 404, "Link not valid", SUNSET_BAD_LINK)
    return page(request, "sunset.html", language=view.language, view=view, token=token, kept=True)
