"""What a worker process keeps between batches: the SMTP connections, the Redis client,
the prepared digest templates, the DKIM keys and the rate limiters.

Built lazily in the process that uses it (never inherited across a fork: the pid is
part of the key), so each prefork child has its own connection.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from newsletter.config import Settings
from newsletter.mail.dkim import DkimKey, keys_from_settings
from newsletter.mail.fastpath import DigestTemplate
from newsletter.sending.connections import ConnectionSet
from newsletter.sending.journal import FileJournal, Journal, RedisJournal
from newsletter.sending.limits import DomainThrottle, RateLimiter
from newsletter.sending.transport import PooledTransport

if TYPE_CHECKING:
    from redis import Redis


class WorkerContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.transport = PooledTransport(settings.smtp)
        self.redis: Redis | None = None
        if settings.redis_url:
            import redis

            self.redis = redis.Redis.from_url(
                settings.redis_url, socket_timeout=10, socket_connect_timeout=5
            )
        self.keys: list[DkimKey] = keys_from_settings(settings)
        # By (digest, variant): a digest carrying a cancelled send's stories has a few.
        self.templates: OrderedDict[tuple[int, int], DigestTemplate] = OrderedDict()
        self.limiter = RateLimiter(settings.send_rate, self.redis)
        self.domains = DomainThrottle(
            settings.send_domain_backoff_seconds, settings.send_domain_rate, self.redis
        )
        self._journals: dict[int, Journal] = {}
        self._connections: ConnectionSet | None = None

    @property
    def connections(self) -> ConnectionSet:
        """The batches' SMTP connections and their event loop (made on first use)."""
        if self._connections is None:
            self._connections = ConnectionSet(self.settings, self.redis)
        return self._connections

    def stop_sending(self) -> None:
        """No more batches of this send are waiting: stop counting in the connection split
        and give extra connections back to the contexts still sending."""
        if self._connections is not None:
            self._connections.run(self._connections.leave())

    def close(self) -> None:
        self.transport.close()
        if self._connections is not None:
            self._connections.close()

    def journal(self, digest_id: int) -> Journal:
        found = self._journals.get(digest_id)
        if found is None:
            if self.redis is not None:
                found = RedisJournal(self.redis, digest_id)
            else:
                found = FileJournal(self.settings.data_dir.resolve() / "journal", digest_id)
            if len(self._journals) > 8:
                self._journals.clear()
            self._journals[digest_id] = found
        return found

    def remember(self, template: DigestTemplate, variant: int = 0) -> None:
        self.templates[(template.digest_id, variant)] = template
        while len(self.templates) > 4:  # a 40 KB digest each; two sends may overlap
            self.templates.popitem(last=False)


_local = threading.local()


def context(settings: Settings) -> WorkerContext:
    """One per thread (a threads pool runs batches side by side, each with its own
    connection) and per process."""
    key = (os.getpid(), settings.smtp_url, settings.broker, settings.database, settings.send_rate)
    current: tuple[tuple[object, ...], WorkerContext] | None = getattr(_local, "current", None)
    if current is None or current[0] != key:
        if current is not None and current[0][0] == os.getpid():
            current[1].close()
        current = _local.current = (key, WorkerContext(settings))
    return current[1]
