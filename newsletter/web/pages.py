"""Rendering helpers shared by the routes: HTML pages and errors in the reader's terms."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from newsletter.config import get_settings
from newsletter.templating import web_env

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def content_security_policy(scripts: Iterable[str] = ()) -> str:
    """Everything from this origin only; `scripts` are inline scripts allowed by their hash."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in scripts
    )
    return (
        f"default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'self'; object-src 'none'"
    )


def secure(response: HTMLResponse, scripts: Iterable[str] = ()) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = content_security_policy(scripts)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def secure_with_inline_scripts(response: HTMLResponse) -> HTMLResponse:
    """A generated page (the API docs) whose own inline scripts may run, and nothing else."""
    return secure(response, _INLINE_SCRIPT.findall(bytes(response.body).decode()))


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    settings = get_settings()
    html = (
        web_env()
        .get_template(template)
        .render(request=request, base_url=settings.base_url, embedded=settings.embedded, **context)
    )
    return secure(HTMLResponse(html, status_code=status))


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return page(request, "error.html", status=status, title=title, message=message)
