"""SQLAlchemy engine and sessions, one per process and database URL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import Settings, get_settings

_engines: dict[str, Engine] = {}
# A pooled connection unused for this long is pinged before it is handed out: one that sat
# through a database restart is replaced instead of failing a request. A busy process
# reuses its connections within milliseconds and pays no round trip for the ping.
IDLE_PING_SECONDS = 1.0


def engine_for(url: str) -> Engine:
    """One engine per URL and process (call reset() after a fork or a settings change)."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = _create(url)
    return engine


def reset(close: bool = True) -> None:
    """Drop every engine and session factory.

    In a forked child pass close=False: the inherited sockets belong to the parent, and
    closing them from here would end the parent's sessions too.
    """
    for engine in _engines.values():
        engine.dispose(close=close)
    _engines.clear()
    _factory.cache_clear()


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the web app read while a worker writes; the busy timeout
            # makes concurrent writers wait instead of failing.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=10)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """pool_pre_ping, only for connections that were idle: pool_pre_ping pings at every
    checkout (a round trip per request). A connection that breaks while in use is still
    caught: SQLAlchemy sees the disconnect and replaces every connection of the pool."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as error:  # noqa: BLE001 - any failure: the pool reconnects
            # The pool discards this connection and checks out a fresh one.
            raise exc.DisconnectionError(str(error)) from error


def get_engine() -> Engine:
    return engine_for(database_url())


@lru_cache(maxsize=8)
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


_url: tuple[Settings, str] | None = None


def database_url() -> str:
    """The settings' database URL, worked out once per settings object (it resolves the
    data folder on the file system: a cost on every request otherwise)."""
    global _url
    settings, cached = get_settings(), _url
    if cached is None or cached[0] is not settings:
        cached = _url = (settings, settings.database)
    return cached[1]


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error."""
    session = _factory(database_url())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def ping() -> None:
    """One round trip to the database (health checks); raises when it does not answer."""
    with session_scope() as session:
        session.execute(text("SELECT 1"))
