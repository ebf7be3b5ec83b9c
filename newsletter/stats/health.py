"""Is each part of the service up? Quick checks with short timeouts, for the dashboard.

Not a snapshot: a check says how things are now. Each one is bounded (a second for
anything over the network) and says what it found in words an operator can act on,
never with a password or a URL that could carry one: the SMTP relay is named by host
and port only, the broker by its kind.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import text

from newsletter.config import Settings
from newsletter.db import engine_for
from newsletter.models import utcnow

TIMEOUT = 1.0


@dataclass(frozen=True)
class Check:
    name: str
    state: str  # ok, down, late, info
    detail: str

    @property
    def ok(self) -> bool:
        return self.state in ("ok", "info")


def database(settings: Settings) -> Check:
    started = time.monotonic()
    try:
        with engine_for(settings.database).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return Check("Database", "down", f"unreachable ({_why(exc)})")
    kind = "SQLite" if settings.database.startswith("sqlite") else "PostgreSQL"
    return Check("Database", "ok", f"{kind}, answered in {_ms(started)}")


def broker(settings: Settings) -> Check:
    """The embedded broker is folders of files; Redis answers PING; any other broker
    (RabbitMQ) is asked for a TCP connection."""
    if settings.embedded:
        folder = settings.broker_folder / "queue"
        if folder.is_dir():
            return Check("Broker", "ok", "embedded (file system)")
        return Check("Broker", "down", "embedded (file system): its folder is missing")
    started = time.monotonic()
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        try:
            client.ping()
        except Exception as exc:  # noqa: BLE001
            return Check("Broker", "down", f"Redis unreachable ({_why(exc)})")
        finally:
            client.close()
        return Check("Broker", "ok", f"Redis, answered in {_ms(started)}")
    parts = urlsplit(settings.broker)
    kind = parts.scheme.split("+")[0] or "broker"
    try:
        port = parts.port or {"amqp": 5672, "amqps": 5671}.get(kind, 5672)
        _connect(parts.hostname or "localhost", port)
    except (OSError, ValueError) as exc:
        return Check("Broker", "down", f"{kind} unreachable ({_why(exc)})")
    return Check("Broker", "ok", f"{kind}, connected in {_ms(started)}")


def smtp(settings: Settings) -> Check:
    config = settings.smtp
    started = time.monotonic()
    try:
        _connect(config.host, config.port)
    except OSError as exc:
        return Check("SMTP", "down", f"{config.host}:{config.port} unreachable ({_why(exc)})")
    return Check("SMTP", "ok", f"{config.host}:{config.port} reachable in {_ms(started)}")


def beat(settings: Settings, tick: datetime | None, now: datetime | None = None) -> Check:
    """Beat's refresh runs every STATS_REFRESH_SECONDS on a worker; three missed are late."""
    if tick is None:
        return Check("Beat last tick", "late", "none yet: is `newsletter beat` running?")
    age = ((now or utcnow()) - tick).total_seconds()
    said = f"{_ago(age)} ({tick:%Y-%m-%d %H:%M:%S} UTC)"
    if age > 3 * settings.stats_refresh_seconds + 30:
        return Check("Beat last tick", "late", f"{said}: beat or the workers are not running")
    return Check("Beat last tick", "ok", said)


def workers(names: list[str] | None, embedded: bool) -> Check:
    """`names`: the workers that answered a ping (None: not asked)."""
    if names is None:
        if embedded:
            return Check(
                "Workers",
                "info",
                "embedded broker: not pinged; beat's last tick shows a worker ran",
            )
        return Check("Workers", "down", "did not answer")
    if not names:
        return Check("Workers", "down", f"none answered within {TIMEOUT:g} s")
    shown = ", ".join(sorted(names)[:5]) + (" …" if len(names) > 5 else "")
    return Check("Workers", "ok", f"{len(names)} alive: {shown}")


def _connect(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=TIMEOUT):
        pass


def _why(exc: BaseException) -> str:
    """The kind of failure, never the message (it may carry a URL with a password)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return type(exc).__name__


def _ms(started: float) -> str:
    return f"{(time.monotonic() - started) * 1000:.0f} ms"


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
