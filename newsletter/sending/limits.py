"""Politeness: a global messages-per-second cap and per-destination-domain limits.

SEND_RATE is shared by every worker through Redis (a counter per one-second window)
when Redis is the broker, and per process on the embedded default (one machine, and a
per-process bucket needs no server). A domain that answers 4xx is backed off
exponentially by itself, as Gmail and Microsoft ask of bulk senders; until the backoff
ends its deliveries are deferred without being tried.

Redis may restart under a running send (production runs it without persistence): the
limits then fall back to this process's own bookkeeping until Redis answers again,
rather than failing the batch with messages accepted but not yet in the ledger.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)
STRIKES = 3  # temporary refusals in a row before a domain is backed off


class RateLimiter:
    """At most `rate` acquisitions per second under `key`, across processes with Redis."""

    def __init__(self, rate: float, client: Any | None, key: str = "nl:rate") -> None:
        self.rate = rate
        self.client = client
        self.key = key
        self._tokens = 0.0
        self._stamp = time.monotonic()

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        if self.client is None:
            self._local()
            return
        try:
            self._shared()
        except RedisError:
            log.warning("Redis unavailable; capping the rate per process for now")
            self._local()

    def _local(self) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(max(1.0, self.rate), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            time.sleep((1 - self._tokens) / self.rate)

    def _shared(self) -> None:
        # Windows of 1/10 s keep bursts small; the cap per window is rate/10 (at least 1).
        per_window = max(1, int(self.rate / 10))
        span = 0.1 if self.rate >= 10 else per_window / self.rate
        while True:
            now = time.time()
            window = int(now / span)
            key = f"{self.key}:{window}"
            pipe = self.client.pipeline()  # type: ignore[union-attr]
            pipe.incr(key)
            pipe.expire(key, 5)
            count = pipe.execute()[0]
            if count <= per_window:
                return
            time.sleep(max(0.001, (window + 1) * span - now))


class DomainThrottle:
    """Per-domain backoff after 4xx replies, plus an optional per-domain rate."""

    def __init__(self, base_backoff: float, rate: float, client: Any | None) -> None:
        self.base = base_backoff
        self.rate = rate
        self.client = client
        self._until: dict[str, float] = {}
        self._strikes: dict[str, int] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._struck: set[str] = set()
        self._seen: dict[str, tuple[float, float]] = {}

    def blocked_until(self, domain: str) -> float | None:
        """The epoch time a backed-off domain may be tried again, or None if it may now."""
        until = self._until.get(domain, 0.0)
        if self.client is not None:
            # Asked per message: a local copy for a second saves a round trip each time.
            cached = self._seen.get(domain)
            now = time.monotonic()
            if cached is not None and now - cached[0] < 1.0:
                until = cached[1]
            else:
                try:
                    raw = self.client.get(f"nl:domain:{domain}:until")
                    until = max(until, float(raw) if raw else 0.0)
                except RedisError:
                    pass  # this process's own backoffs meanwhile
                self._seen[domain] = (now, until)
        return until if until > time.time() else None

    def temporary_failure(self, domain: str) -> float | None:
        """Note a 4xx from `domain`; after STRIKES in a row, back the domain off.

        One greylisted address is not the domain asking us to slow down; several
        temporary refusals in a row without a success in between are.
        """
        self._struck.add(domain)
        local = self._strikes[domain] = self._strikes.get(domain, 0) + 1
        strikes = local
        if self.client is not None:
            try:
                strikes = int(self.client.incr(f"nl:domain:{domain}:strikes"))
                self.client.expire(f"nl:domain:{domain}:strikes", 3600)
            except RedisError:
                strikes = local
        if strikes < STRIKES:
            return None
        until = time.time() + min(3600.0, self.base * 2.0 ** min(strikes - STRIKES, 12))
        self._until[domain] = until
        if self.client is not None:
            self._seen[domain] = (time.monotonic(), until)
            try:
                self.client.set(f"nl:domain:{domain}:until", until, ex=3700)
            except RedisError:
                pass  # held back in this process at least
        return until

    def success(self, domain: str) -> None:
        """An accept ends a run of strikes (only costs a call after a strike)."""
        if domain in self._struck:
            self._struck.discard(domain)
            self._strikes.pop(domain, None)
            if self.client is not None:
                try:
                    self.client.delete(f"nl:domain:{domain}:strikes")
                except RedisError:
                    pass

    def acquire(self, domain: str) -> None:
        if self.rate <= 0:
            return
        limiter = self._limiters.get(domain)
        if limiter is None:
            limiter = self._limiters[domain] = RateLimiter(
                self.rate, self.client, key=f"nl:domain:{domain}:rate"
            )
        limiter.acquire()
