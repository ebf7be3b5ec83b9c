"""Rendering helpers shared by the routes: HTML pages and errors in the reader's terms."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from newsletter.config import get_settings
from newsletter.templating import web_env


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    settings = get_settings()
    html = (
        web_env()
        .get_template(template)
        .render(request=request, base_url=settings.base_url, embedded=settings.embedded, **context)
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return page(request, "error.html", status=status, title=title, message=message)
