"""Post due webhook deliveries: signed, with a short timeout, retried with backoff.

A sweep (a Celery task on beat, nudged by the DeliverWebhooks effect) takes the pending
rows whose time has come, claims each by moving its next attempt forward (so a second
sweep running at the same time skips it), posts it outside any transaction and records
the answer. 2xx is delivered; anything else (another code, a timeout, a refused
connection, a private address in production) is retried after 30 s, 2 min, 10 min,
1 h, 6 h and 12 h, then failed: about 19 hours in all.

A dead endpoint costs a sweep one timeout at most: after its first failure in a sweep,
its other rows wait for the next one. A sweep stops after a time budget too, so it
never holds a worker for long; sends never wait for webhooks (the rows were written in
their transaction, nothing else).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import WebhookDelivery, WebhookEndpoint, utcnow
from newsletter.netnames import public_only
from newsletter.sending.lifecycle import rowcount
from newsletter.webhooks import signing

log = logging.getLogger(__name__)

BACKOFF = (30, 120, 600, 3600, 6 * 3600, 12 * 3600)  # seconds after attempt 1, 2, ...
TIMEOUT = 5.0
LEASE = timedelta(seconds=60)  # a claimed row is not taken again before this
BUDGET_SECONDS = 20.0
BATCH = 100
ERROR_CHARS = 500


class Refused(Exception):
    """The URL's host is private (production): not posted."""


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    code: int | None
    error: str | None


def retry_delay(attempts: int) -> timedelta | None:
    """When to try again after `attempts` failed tries, or None: give up."""
    if attempts > len(BACKOFF):
        return None
    return timedelta(seconds=BACKOFF[attempts - 1])


def post(
    client: httpx.Client, url: str, secret: str, delivery: WebhookDelivery, now: int
) -> Outcome:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "newsletter-webhooks/1",
        "X-Newsletter-Signature": signing.signature(secret, now, delivery.payload),
        "X-Newsletter-Event": delivery.event_type,
        "X-Newsletter-Delivery": delivery.event_id,
    }
    try:
        response = client.post(url, content=delivery.payload.encode(), headers=headers)
    except Refused as exc:
        return Outcome(False, None, str(exc))
    except httpx.TimeoutException:
        return Outcome(False, None, f"timed out after {TIMEOUT:g} s")
    except httpx.HTTPError as exc:
        return Outcome(False, None, f"{exc.__class__.__name__}: {exc}")
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code, None)
    return Outcome(False, response.status_code, f"HTTP {response.status_code}")


def client(settings: Settings) -> httpx.Client:
    hooks: list[Callable[[httpx.Request], None]] = []
    if not settings.may_fetch_private:
        hooks.append(public_only(lambda url, reason: Refused(f"refused: {reason}")))
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False, event_hooks={"request": hooks})


def _claim(session: Session, row_id: int, seen: datetime | None, now: datetime) -> bool:
    return bool(
        rowcount(
            session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == row_id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at == seen,
                )
                .values(next_attempt_at=now + LEASE)
            )
        )
    )


def _record(session: Session, row_id: int, attempts: int, outcome: Outcome, now: datetime) -> str:
    values: dict[str, object] = {"attempts": attempts, "last_code": outcome.code}
    if outcome.delivered:
        # last_error stays: the log shows what the earlier attempts met.
        values |= {"status": "delivered", "delivered_at": now, "next_attempt_at": None}
    else:
        delay = retry_delay(attempts)
        values["last_error"] = (outcome.error or "")[:ERROR_CHARS]
        if delay is None:
            values |= {"status": "failed", "next_attempt_at": None}
        else:
            values["next_attempt_at"] = now + delay
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id == row_id).values(**values))
    return str(values.get("status", "pending"))


def deliver_due(
    sessions: Callable[[], AbstractContextManager[Session]],
    settings: Settings,
    *,
    now: datetime | None = None,
    budget: float = BUDGET_SECONDS,
) -> dict[str, int]:
    """Post what is due at `now` (default: the clock); returns counts by outcome.

    `sessions` opens a session (newsletter.db); each claim and each record commits on
    its own, so a worker killed mid-sweep leaves rows that are simply due again later.
    """
    started = time.monotonic()
    counts = {"delivered": 0, "retrying": 0, "failed": 0, "skipped": 0}
    failed_endpoints: set[int] = set()
    with sessions() as session:
        moment = now or utcnow()
        due = session.execute(
            select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret_nonce)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= moment,
                WebhookEndpoint.active.is_(True),
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(BATCH)
        ).all()
        session.expunge_all()
    if not due:
        return counts
    with client(settings) as http:
        for delivery, url, nonce in due:
            if time.monotonic() - started > budget or delivery.endpoint_id in failed_endpoints:
                counts["skipped"] += 1
                continue
            moment = now or utcnow()
            with sessions() as session:
                claimed = _claim(session, delivery.id, delivery.next_attempt_at, moment)
                session.commit()
            if not claimed:
                counts["skipped"] += 1
                continue
            secret = signing.endpoint_secret(settings.secret, nonce)
            outcome = post(http, url, secret, delivery, int(time.time()))
            with sessions() as session:
                status = _record(
                    session, delivery.id, delivery.attempts + 1, outcome, now or utcnow()
                )
                session.commit()
            if outcome.delivered:
                counts["delivered"] += 1
            else:
                failed_endpoints.add(delivery.endpoint_id)
                counts["failed" if status == "failed" else "retrying"] += 1
                log.info(
                    "webhook %s to endpoint %s: %s (attempt %s)",
                    delivery.event_id,
                    delivery.endpoint_id,
                    outcome.error,
                    delivery.attempts + 1,
                )
    return counts
