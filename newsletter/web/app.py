"""Application factory: routes, error pages that never show a traceback, shared state."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsletter import __version__
from newsletter.config import get_settings
from newsletter.db import ping
from newsletter.web import admin, bounces_api, console, content, outbox, public, sends, webhooks
from newsletter.web import feeds as feeds_api
from newsletter.web import media as media_files
from newsletter.web import preflight as preflight_api
from newsletter.web import segments_api as audience_segments
from newsletter.web import tracking as engagement_tracking
from newsletter.web import users_api as accounts_api
from newsletter.web import webhooks_api as outgoing_webhooks
from newsletter.web.pages import error_page, secure_with_inline_scripts
from newsletter.web.ratelimit import make_limiter

log = logging.getLogger(__name__)

# Swagger UI ships inside the package (static/swagger-ui, Apache-2.0): /api/docs works
# without internet and loads nothing from another origin.
STATIC = Path(__file__).resolve().parent / "static"

# Container objects allocated before the collector's youngest generation is collected
# (CPython's default is 700; 2,000 since Python 3.13). Each young collection moves the
# objects of the requests in flight to older generations, and enough of them start a
# full collection; at 700 a web process under load ran one every few seconds.
GC_YOUNG_THRESHOLD = 10_000


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/webhooks/")) or "application/json" in (
        request.headers.get("accept", "") + request.headers.get("content-type", "")
    )


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(title="newsletter", version=__version__, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.limiter = make_limiter(settings.redis_url)
    for module in (public, content, admin, sends, bounces_api, webhooks):
        app.include_router(module.router)
    app.include_router(feeds_api.router)
    app.include_router(media_files.router)
    app.include_router(preflight_api.router)
    app.include_router(accounts_api.router)
    app.include_router(audience_segments.router)  # H2: /api/segments
    app.include_router(outgoing_webhooks.router)  # H4: /api/webhooks (outgoing)
    app.include_router(engagement_tracking.router)  # H5: /c/ clicks, /o/ pixel, /sunset/
    if settings.embedded:
        app.include_router(outbox.router)
    console.install(app)

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return secure_with_inline_scripts(
            get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title="newsletter admin API",
                swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url="/static/swagger-ui/swagger-ui.css",
                swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        try:
            ping()
        except Exception:  # noqa: BLE001 - health reports, never raises
            log.exception("health check: database unreachable")
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(admin.prometheus_metrics(), media_type="text/plain; version=0.0.4")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        title = {404: "Page not found", 405: "Not allowed"}.get(exc.status_code, "Error")
        return error_page(request, exc.status_code, title, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        detail = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, 422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        if _wants_json(request):
            return JSONResponse({"detail": "Internal error; it has been logged."}, 500)
        return error_page(request, 500, "Something went wrong", "Please try again in a moment.")

    return app


def serve_app() -> FastAPI:
    """The app as `newsletter web` serves it: `create_app()`, then the process's heap
    settled (tests build theirs with `create_app()` and keep the collector's defaults)."""
    app = create_app()
    _settle_heap()
    return app


def _settle_heap() -> None:
    """Load what the first requests would load, then freeze the heap out of the collector.

    A full collection scans every container object the process holds, ~190,000 of them
    once the libraries are loaded: 50-110 ms with every request in flight waiting (seen
    under bench/subscribe.py). Frozen, they are never scanned again; a full collection
    then scans only what was made since, and with a larger young generation it comes
    rarely."""
    from workers.tasks import load_producer  # Celery's task modules, as a sign-up loads them

    load_producer()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
