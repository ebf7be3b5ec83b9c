"""Fixed-window rate limits: in Redis when Redis is the broker, so every web process shares them."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window: int) -> bool:
        """Count one hit; True while the key stays within `limit` per `window` seconds."""

    def spent(self, key: str, limit: int, window: int) -> bool:
        """True when the key already has `limit` hits in this window (nothing counted)."""


class MemoryRateLimiter:
    """For the embedded default: one web process, so its memory is the whole truth."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}

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


class RedisRateLimiter:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2)

    def hit(self, key: str, limit: int, window: int) -> bool:
        bucket = f"nl:rl:{key}:{int(time.time()) // window}"
        pipe = self._redis.pipeline()
        pipe.incr(bucket)
        pipe.expire(bucket, window + 1)
        count, _ = pipe.execute()
        return int(count) <= limit

    def spent(self, key: str, limit: int, window: int) -> bool:
        count = self._redis.get(f"nl:rl:{key}:{int(time.time()) // window}")
        return count is not None and int(count) >= limit


def make_limiter(redis_url: str | None) -> RateLimiter:
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()
