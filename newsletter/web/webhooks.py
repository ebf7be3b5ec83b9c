"""`POST /webhooks/bounces/{provider}`: SES (via SNS), Postmark, SendGrid and Mailgun.

Each provider module authenticates the request the way that provider supports and parses
it; refused requests are logged and counted and answered 401/403 (authentication), 400
(payload), 404 (unknown or unconfigured provider) or 413 (too large), with nothing
written. Accepted requests answer 200 with what was done, so a provider's retry after a
timeout is harmless (events are deduplicated).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from newsletter.bounces.handling import record_rejection
from newsletter.bounces.webhooks import (
    Parser,
    WebhookError,
    mailgun,
    postmark,
    record_events,
    sendgrid,
    ses,
)
from newsletter.config import get_settings
from newsletter.db import session_scope

log = logging.getLogger(__name__)
router = APIRouter()
PROVIDERS: dict[str, Parser] = {
    "ses": ses.parse,
    "postmark": postmark.parse,
    "sendgrid": sendgrid.parse,
    "mailgun": mailgun.parse,
}
MAX_BODY = 5_000_000


def _refuse(source: str, status: int, reason: str, detail: str) -> HTTPException:
    with session_scope() as session:
        record_rejection(session, source, reason)
    headers = {"WWW-Authenticate": 'Basic realm="webhooks"'} if status == 401 else None
    return HTTPException(status, detail, headers)


@router.post("/webhooks/bounces/{provider}", tags=["webhooks"])
async def bounce_webhook(provider: str, request: Request) -> dict[str, object]:
    parse = PROVIDERS.get(provider)
    source = f"webhook:{provider}"[:32]
    if parse is None:
        raise HTTPException(404, f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY:
            raise await run_in_threadpool(_refuse, source, 413, "too-large", "body too large")
    settings = get_settings()
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = dict(request.query_params)
    try:
        events = await run_in_threadpool(parse, bytes(body), headers, query, settings)
    except WebhookError as exc:
        raise await run_in_threadpool(_refuse, source, exc.status, exc.reason, str(exc)) from None

    def record() -> dict[str, int]:
        with session_scope() as session:
            return record_events(session, settings, events, source)

    counts = await run_in_threadpool(record)
    return {"events": len(events), "actions": counts}
