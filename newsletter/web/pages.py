"""Rendering helpers shared by the routes: HTML pages and errors in the reader's terms."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from newsletter import i18n
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


LANG_PARAM = "lang"


def page_language(request: Request, reader_language: str | None = None) -> str:
    """The language of a public page: one the visitor chose with ?lang=, else the reader's
    own (token pages), else the browser's Accept-Language, else the default."""
    settings = get_settings()
    return (
        i18n.supported(request.query_params.get(LANG_PARAM), settings)
        or i18n.supported(reader_language, settings)
        or i18n.negotiate(request.headers.get("accept-language"), settings)
    )


def language_links(request: Request, current: str) -> list[dict[str, str]]:
    """Links to this page in the other offered languages (?lang=xx, other query kept)."""
    links = []
    for code in get_settings().language_codes:
        if code == current:
            continue
        query = urlencode(
            [
                *((k, v) for k, v in request.query_params.multi_items() if k != LANG_PARAM),
                (LANG_PARAM, code),
            ]
        )
        links.append(
            {"code": code, "label": i18n.language_name(code), "href": f"{request.url.path}?{query}"}
        )
    return links


def page(
    request: Request,
    template: str,
    status: int = 200,
    *,
    language: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """A public page: in the language the visitor chose (?lang=), else `language` (the
    reader's own on token pages, the form's on a sign-up), else Accept-Language's."""
    settings = get_settings()
    code = page_language(request, language)
    html = (
        i18n.localized(web_env(), code)
        .get_template(template)
        .render(
            request=request,
            base_url=settings.base_url,
            embedded=settings.embedded,
            language_links=language_links(request, code),
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Language"] = code
    return secure(response)


def error_page(
    request: Request, status: int, title: str, message: str, *, language: str | None = None
) -> HTMLResponse:
    """An error page; `title` and `message` are looked up in the page's catalogue."""
    code = page_language(request, language)
    return page(
        request,
        "error.html",
        status=status,
        language=code,
        title=i18n.tr(code, title),
        message=i18n.tr(code, message),
    )
