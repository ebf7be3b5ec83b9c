"""The operator console under /console: server-rendered pages, one module per page.

Each module has a `router`; every route depends on `core.signed_in` or
`core.allowed(capability)` and calls the same domain actions as the CLI and the API.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from newsletter.web.console import (
    audit_log,
    bounces,
    core,
    dashboard,
    digests,
    lists,
    login,
    segments,
    sends,
    stories,
    subscribers,
    users,
    webhooks,
)

MODULES = (
    login,
    dashboard,
    lists,
    segments,
    subscribers,
    stories,
    digests,
    sends,
    bounces,
    audit_log,
    users,
    webhooks,
)


def install(app: FastAPI) -> None:
    for module in MODULES:
        app.include_router(module.router, prefix=core.PREFIX, include_in_schema=False)

    @app.exception_handler(core.LoginRequired)
    async def to_login(request: Request, exc: core.LoginRequired) -> Response:
        query = urlencode({"next": exc.next_path}) if exc.next_path != core.PREFIX else ""
        return RedirectResponse(f"{core.PREFIX}/login" + (f"?{query}" if query else ""), 303)

    @app.exception_handler(core.ActionFailed)
    async def failed(request: Request, exc: core.ActionFailed) -> Response:
        return core.render(
            request, "error.html", status=exc.status, title="Not done", message=exc.message
        )
