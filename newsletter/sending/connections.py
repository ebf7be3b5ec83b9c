"""The SMTP connections of one worker context: an event loop and up to its share of
SEND_CONNECTIONS, kept between batches.

The share: with Redis, a deployment-wide count of leased slots (a ZSET whose members
expire unless renewed, so a dead process's slots come back after SLOT_SECONDS), and
never more than this process's even split of the worker's pool; without Redis (one
host) the even split alone. A process always may have one connection, so no worker
starves waiting on the others. Connections open lazily, as a batch's rows need them.
A relay that answers 421 on connect (its own cap) lowers this process's count to what
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
        self.share = process_share(self.total)
        self.loop = asyncio.new_event_loop()
        self.idle: list[AsyncConnection] = []
        self.busy = 0
        self._ceiling = self.share  # lowered by a relay's 421
        self._ceiling_at = 0.0
        self._slots: dict[int, str] = {}  # id(connection) -> leased ZSET member
        self._key = f"nl:smtp:slots:{settings.smtp.host}:{settings.smtp.port}"
        self._prefix = uuid.uuid4().hex[:12]

    @property
    def open_count(self) -> int:
        return len(self.idle) + self.busy

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def wanted(self, rows: int) -> int:
        """How many connections a batch of `rows` may use now."""
        if (
            self._ceiling < self.share
            and time.monotonic() - self._ceiling_at > RETRY_CEILING_SECONDS
        ):
            self._ceiling = self.share
        return max(1, min(rows, self._ceiling))

    async def acquire(self) -> AsyncConnection | None:
        """A kept connection, or a new one opened if the share allows; None if none may
        be had now (others hold the slots, or the relay's cap); SmtpUnavailable if this
        process has none open and cannot open one."""
        if self.idle:
            conn = self.idle.pop()
            self.busy += 1
            return conn
        if self.open_count >= self._ceiling:
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
            self._ceiling = max(1, self.open_count)
            self._ceiling_at = time.monotonic()
            log.info("SMTP relay refused connection %d: %s", self.open_count + 1, exc)
            if self.open_count == 0:
                raise
            return None
        return conn

    def release(self, conn: AsyncConnection) -> None:
        """Back to the set: kept if still open, forgotten (its slot freed) if not."""
        self.busy -= 1
        if conn.is_open and self.open_count < self._ceiling:
            self.idle.append(conn)
        else:
            conn.discard()
            self._release_slot(conn)

    def renew(self) -> None:
        """Keep this process's leased slots alive (every batch and every fold)."""
        if self.redis is None or not self._slots:
            return
        expiry = time.time() + SLOT_SECONDS
        try:
            # Added back if it expired meanwhile (idle between sends): the connection is open.
            self.redis.zadd(self._key, {m: expiry for m in self._slots.values()})
        except Exception:  # noqa: BLE001 - Redis down: the process keeps its even split
            log.debug("renewing SMTP slots failed", exc_info=True)

    def close(self) -> None:
        for conn in self.idle:
            self.run(conn.close())
            self._release_slot(conn)
        self.idle.clear()

    def _lease(self) -> tuple[bool, str | None]:
        """May one more connection open, and its deployment-wide slot (none without
        Redis; a process's first connection opens even without a slot)."""
        if self.redis is None:
            return True, None
        member = f"{self._prefix}:{os.getpid()}:{time.monotonic_ns()}"
        now = time.time()
        try:
            got = self.redis.eval(_LEASE, 1, self._key, now, now + SLOT_SECONDS, self.total, member)
        except Exception:  # noqa: BLE001 - Redis down: fall back to the even split
            log.debug("leasing an SMTP slot failed", exc_info=True)
            return True, None
        if got:
            return True, member
        return self.open_count == 0, None

    def _release_slot(self, conn: AsyncConnection) -> None:
        member = self._slots.pop(id(conn), None)
        if member is not None and self.redis is not None:
            try:
                self.redis.zrem(self._key, member)
            except Exception:  # noqa: BLE001 - it expires by itself
                log.debug("releasing an SMTP slot failed", exc_info=True)
