"""/outbox: what the built-in catcher received, for the embedded default only."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from newsletter.config import get_settings
from newsletter.mail.catcher import read_caught, read_outbox
from newsletter.web.pages import page

router = APIRouter(include_in_schema=False)


@router.get("/outbox", response_class=HTMLResponse)
def outbox(request: Request) -> HTMLResponse:
    return page(request, "outbox.html", messages=read_outbox(get_settings().outbox_dir))


@router.get("/outbox/{key}", response_class=HTMLResponse)
def outbox_message(request: Request, key: str) -> HTMLResponse:
    caught = read_caught(get_settings().outbox_dir, key)
    if caught is None:
        raise HTTPException(404, "No such message in the outbox.")
    headers = [(k, str(v)) for k, v in caught.message.items()]
    return page(
        request,
        "outbox_message.html",
        msg=caught,
        headers=headers,
        text=caught.part("plain"),
        html=caught.part("html"),
    )
