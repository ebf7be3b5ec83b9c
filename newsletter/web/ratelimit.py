"""Fixed-window rate limits: in Redis when Redis is the broker, so every web process shares them."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol

import redis

# (key, limit, window seconds)
Hit = tuple[str, int, int]


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window: int) -> bool:
        """Count one hit; True while the key stays within `limit` per `window` seconds."""

    def hit_each(self, hits: Sequence[Hit]) -> int | None:
        """Count the hits in order, stopping at the first over its limit: its index, or None.

        Exactly what calling hit() for each in turn until one fails would do, in one step
        (one round trip to Redis instead of one per key).
        """

    def spent(self, key: str, limit: int, window: int) -> bool:
        """True when the key already has `limit` hits in this window (nothing counted)."""


class MemoryRateLimiter:
    """For the embedded default: one web process, so its memory is the whole truth."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}

    def hit_each(self, hits: Sequence[Hit]) -> int | None:
        for index, (key, limit, window) in enumerate(hits):
            if not self.hit(key, limit, window):
                return index
        return None

    def hit(self, key: str, limit: int, window: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 100_000:  # bounded memory under a flood of keys
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            count, reset = self._counts.get(key, (0, now + window))
            if reset <= now:
                count, reset = 0, now + window
            count += 1
            self._counts[key] = (count, reset)
            return count <= limit

    def spent(self, key: str, limit: int, window: int) -> bool:
        with self._lock:
            count, reset = self._counts.get(key, (0, 0.0))
            return reset > time.monotonic() and count >= limit


# Atomic on the server, so every web process shares the counts: INCR each key in turn,
# and stop at the first over its limit (later keys are not counted, as with hit() calls).
_HIT_EACH = """
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, tonumber(ARGV[2 * i])) end
  if count > tonumber(ARGV[2 * i - 1]) then return i end
end
return 0
"""


class RedisRateLimiter:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2)
        self._hit_each = self._redis.register_script(_HIT_EACH)

    def hit(self, key: str, limit: int, window: int) -> bool:
        return self.hit_each([(key, limit, window)]) is None

    def hit_each(self, hits: Sequence[Hit]) -> int | None:
        if not hits:
            return None
        now = int(time.time())
        keys = [f"nl:rl:{key}:{now // window}" for key, _, window in hits]
        args = [n for _, limit, window in hits for n in (limit, window + 1)]
        over = int(self._hit_each(keys=keys, args=args))  # EVALSHA; loads the script once
        return over - 1 if over else None

    def spent(self, key: str, limit: int, window: int) -> bool:
        count = self._redis.get(f"nl:rl:{key}:{int(time.time()) // window}")
        return count is not None and int(count) >= limit


def make_limiter(redis_url: str | None) -> RateLimiter:
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()
