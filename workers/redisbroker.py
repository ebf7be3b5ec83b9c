"""kombu's Redis transport with one client object per channel instead of one per command.

kombu builds a new redis-py client for every command it sends outside a consumer
(`Channel.conn_or_acquire`: every task published, every queue length asked). The client
shares the channel's connection pool, so no connection is opened, but redis-py fills a
new table of some 170 reply handlers each time: a quarter of the CPU of enqueueing a
task (448 against 327 us, bench/signup_parts.py), which a sign-up does once. A redis-py
client is safe to share (it takes a pooled connection per command), so each channel keeps
one, made again when kombu replaces the channel's pool (after a fork or a reconnect).

Also: a channel closed after its connection was (Celery's consumer reconnecting after
Redis restarted) asks for a client to put its unacknowledged messages back, kombu then
builds a pool from a connection that is gone and raises AttributeError, and the worker
stops with "Unrecoverable error" (kombu issues 582 and 970). Here that is a Redis
ConnectionError, which the close ignores, as it does for an unreachable Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(redis.Channel):
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        if self._pool is None and getattr(self.connection, "client", None) is None:
            raise RedisConnectionError("the channel's connection is closed")
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = self._create_client()
        yield shared


class Transport(redis.Transport):
    Channel = Channel
