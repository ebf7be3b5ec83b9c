"""/outbox: what the built-in catcher received, for the embedded default only."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from newsletter.config import get_settings
from newsletter.mail.catcher import read_caught, read_outbox
from newsletter.web.pages import page

router = APIRouter(include_in_schema=False)

_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_LINK = re.compile(r"<a(?=[\s>])", re.IGNORECASE)


def for_frame(html: str) -> str:
    """The mail's HTML as the outbox frames it: every link opens in a new tab.

    The frame is sandboxed (no scripts, no same origin), and the pages the links lead to,
    such as the confirm page, refuse to be framed; in a tab of their own they work.
    """
    html = _LINK.sub('<a target="_blank" rel="noopener"', html)
    base = '<base target="_blank">'
    head = _HEAD.search(html)
    if head is None:
        return base + html
    return html[: head.end()] + base + html[head.end() :]


@router.get("/outbox", response_class=HTMLResponse)
def outbox(request: Request) -> HTMLResponse:
    return page(request, "outbox.html", messages=read_outbox(get_settings().outbox_dir))


@router.get("/outbox/{key}", response_class=HTMLResponse)
def outbox_message(request: Request, key: str) -> HTMLResponse:
    caught = read_caught(get_settings().outbox_dir, key)
    if caught is None:
        raise HTTPException(404, "No such message in the outbox.")
    headers = [(k, str(v)) for k, v in caught.message.items()]
    html = caught.part("html")
    return page(
        request,
        "outbox_message.html",
        msg=caught,
        headers=headers,
        text=caught.part("plain"),
        html=for_frame(html) if html else "",
    )
