"""The SMTP connections of one worker context: an event loop and up to its share of
SEND_CONNECTIONS, kept between batches.

The share: with Redis, SEND_CONNECTIONS split evenly among the contexts sending now
(each registers while its batch runs, with an expiry, so a dead one drops out), and a
deployment-wide count of leased slots (a ZSET whose members expire unless renewed, so a
dead process's slots come back after SLOT_SECONDS) that no share may overrun; without
Redis (one host) this process's even split of the worker's pool. A context above its
share (others started sending) closes its extra connections as they come free, and
one with no batch of its send left waiting keeps only one idle while others send, so a
context waiting for a slot gets one within a batch. Between two batches of a send a
context keeps them all: reopening them (a TCP and an EHLO round trip each) would idle
every connection a few round trips per batch, most of the time on a distant relay.
Connections open lazily, as a batch's rows need them.
A relay that answers 421 on connect (its own cap) lowers this context's count to what
it has open; only when not even one can be had is it an outage (SmtpUnavailable).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Any

from newsletter.config import Settings
from newsletter.sending.aiosmtp import AsyncConnection, RelayRefused
from newsletter.sending.transport import SmtpUnavailable

log = logging.getLogger(__name__)
SLOT_SECONDS = 60.0  # a leased slot not renewed for this long is free again
RETRY_CEILING_SECONDS = 30.0  # after a relay's 421, try for more again after this
SENDER_SECONDS = 15.0  # a sending context not renewed for this long no longer counts
SHARE_SECONDS = 1.0  # how long a computed share is used before counting again
# Set by the worker (workers.tasks) before its pool starts: how many processes (or
# threads, each with its own context) split this host's share.
POOL_ENV = "NEWSLETTER_WORKER_POOL_SIZE"

_LEASE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
return 1
"""


def process_share(total: int) -> int:
    """This process's even split of `total` (at least 1)."""
    try:
        pool = max(1, int(os.environ.get(POOL_ENV, "1")))
    except ValueError:
        pool = 1
    return max(1, total // pool)


class ConnectionSet:
    def __init__(self, settings: Settings, redis: Any | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.total = settings.send_connections
        self.loop = asyncio.new_event_loop()
        self.idle: list[AsyncConnection] = []
        self.busy = 0
        self._share = process_share(self.total)
        self._share_at = -SHARE_SECONDS
        self._relay_cap: int | None = None  # set by a relay's 421
        self._relay_cap_at = 0.0
        self._slots: dict[int, str] = {}  # id(connection) -> leased ZSET member
        self._key = f"nl:smtp:slots:{settings.smtp.host}:{settings.smtp.port}"
        self._senders = f"nl:smtp:senders:{settings.smtp.host}:{settings.smtp.port}"
        self._prefix = uuid.uuid4().hex[:12]

    @property
    def open_count(self) -> int:
        return len(self.idle) + self.busy

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def share(self) -> int:
        """This context's even split of SEND_CONNECTIONS among the contexts sending now
        (recounted at most every SHARE_SECONDS)."""
        if self.redis is None:
            return self._share
        now_m = time.monotonic()
        if now_m - self._share_at >= SHARE_SECONDS:
            self._share_at = now_m
            try:
                now = time.time()
                pipe = self.redis.pipeline()
                pipe.zremrangebyscore(self._senders, "-inf", now)
                pipe.zcard(self._senders)
                senders = int(pipe.execute()[1])
                self._share = max(1, self.total // max(1, senders))
            except Exception:  # noqa: BLE001 - Redis down: keep the last share
                log.debug("counting SMTP senders failed", exc_info=True)
        return self._share

    def limit(self) -> int:
        """The most connections this context may have open now."""
        share = self.share()
        if self._relay_cap is not None:
            if time.monotonic() - self._relay_cap_at > RETRY_CEILING_SECONDS:
                self._relay_cap = None
            else:
                return max(1, min(share, self._relay_cap))
        return share

    def wanted(self, rows: int) -> int:
        """How many connections a batch of `rows` may use now."""
        return max(1, min(rows, self.limit()))

    async def trim(self) -> None:
        """Close kept connections above the limit (other contexts started sending)."""
        while self.idle and self.open_count > self.limit():
            conn = self.idle.pop()
            await conn.close()
            self._release_slot(conn)

    async def acquire(self) -> AsyncConnection | None:
        """A kept connection, or a new one opened if the share allows; None if none may
        be had now (others hold the slots, or the relay's cap); SmtpUnavailable if this
        process has none open and cannot open one."""
        if self.idle:
            conn = self.idle.pop()
            self.busy += 1
            return conn
        if self.open_count >= self.limit():
            return None
        allowed, member = self._lease()
        if not allowed:
            return None
        conn = AsyncConnection(self.settings.smtp)
        if member is not None:
            self._slots[id(conn)] = member
        self.busy += 1
        try:
            await conn.open()
        except SmtpUnavailable as exc:
            self.busy -= 1
            self._release_slot(conn)
            if self.open_count == 0 and not isinstance(exc, RelayRefused):
                raise
            # The relay's cap (421) or a refused extra connection: keep to what is open.
            self._relay_cap = max(1, self.open_count)
            self._relay_cap_at = time.monotonic()
            log.info("SMTP relay refused connection %d: %s", self.open_count + 1, exc)
            if self.open_count == 0:
                raise
            return None
        return conn

    def release(self, conn: AsyncConnection) -> None:
        """Back to the set: kept if still open, forgotten (its slot freed) if not."""
        self.busy -= 1
        if conn.is_open and self.open_count < self.limit():
            self.idle.append(conn)
        else:
            conn.discard()
            self._release_slot(conn)

    def renew(self) -> None:
        """This context sends (it counts in the split) and its leased slots stay alive;
        at every batch's start and every fold."""
        if self.redis is None:
            return
        now = time.time()
        try:
            pipe = self.redis.pipeline()
            pipe.zadd(self._senders, {self._prefix: now + SENDER_SECONDS})
            if self._slots:
                # Added back if one expired meanwhile (idle between sends): it is open.
                pipe.zadd(self._key, {m: now + SLOT_SECONDS for m in self._slots.values()})
            pipe.execute()
        except Exception:  # noqa: BLE001 - Redis down: the process keeps its even split
            log.debug("renewing SMTP slots failed", exc_info=True)

    async def leave(self) -> None:
        """No batch of this context's send is waiting: it no longer counts in the split,
        and while other contexts send, its idle connections beyond one give their slots
        back to them."""
        if self.redis is None:
            return
        try:
            pipe = self.redis.pipeline()
            pipe.zrem(self._senders, self._prefix)
            pipe.zremrangebyscore(self._senders, "-inf", time.time())
            pipe.zcard(self._senders)
            others = int(pipe.execute()[2])
        except Exception:  # noqa: BLE001 - it expires by itself
            log.debug("leaving the SMTP senders failed", exc_info=True)
            return
        while others and len(self.idle) > 1:
            conn = self.idle.pop()
            await conn.close()
            self._release_slot(conn)

    def close(self) -> None:
        for conn in self.idle:
            self.run(conn.close())
            self._release_slot(conn)
        self.idle.clear()

    def _lease(self) -> tuple[bool, str | None]:
        """May one more connection open, and its deployment-wide slot (none without
        Redis). Strict: a context whose slots others hold waits for one to come free."""
        if self.redis is None:
            return True, None
        member = f"{self._prefix}:{os.getpid()}:{time.monotonic_ns()}"
        now = time.time()
        try:
            got = self.redis.eval(_LEASE, 1, self._key, now, now + SLOT_SECONDS, self.total, member)
        except Exception:  # noqa: BLE001 - Redis down: fall back to the even split
            log.debug("leasing an SMTP slot failed", exc_info=True)
            return True, None
        return (True, member) if got else (False, None)

    def _release_slot(self, conn: AsyncConnection) -> None:
        member = self._slots.pop(id(conn), None)
        if member is not None and self.redis is not None:
            try:
                self.redis.zrem(self._key, member)
            except Exception:  # noqa: BLE001 - it expires by itself
                log.debug("releasing an SMTP slot failed", exc_info=True)
