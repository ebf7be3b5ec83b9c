"""Fixtures: each test gets its own data dir and database; the env is the configuration."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports newsletter: a data dir of the session's own, never ./var.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="newsletter-tests-"))
os.environ["NEWSLETTER_DATA_DIR"] = str(_SESSION_DIR)
for _name in list(os.environ):
    if _name.startswith("NEWSLETTER_") and _name not in (
        "NEWSLETTER_DATA_DIR",
        "NEWSLETTER_TEST_POSTGRES_URL",
    ):
        del os.environ[_name]
# Wheels the tests build from the checkout (`pip wheel .`): setuptools' build/ and egg-info
# folders of the session's own, not the checkout's, which parallel xdist workers share and
# where two builds at once would remove each other's files. Read by the build backend that
# pip runs (setuptools' DIST_EXTRA_CONFIG).
_BUILD_CFG = _SESSION_DIR / "setuptools.cfg"
_BUILD_CFG.write_text(
    f"[build]\nbuild_base = {_SESSION_DIR / 'build'}\n[egg_info]\negg_base = {_SESSION_DIR}\n"
)
os.environ["DIST_EXTRA_CONFIG"] = str(_BUILD_CFG)

from newsletter.config import get_settings  # noqa: E402
from tests.services import (  # noqa: E402
    SESSION_REDIS,
    RedisServer,
    SmtpRules,
    SmtpServer,
    postgres_database,
    redis_database,
)


def reset_caches() -> None:
    from newsletter import db

    get_settings.cache_clear()
    db.reset()


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    yield
    reset_caches()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("NEWSLETTER_DATA_DIR", str(path))
    reset_caches()
    return path


def _migrated(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from newsletter.migrate import upgrade

    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
    reset_caches()
    upgrade(url)
    return url


@pytest.fixture
def sqlite_db(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return _migrated(f"sqlite:///{data_dir / 'newsletter.db'}", monkeypatch)


@pytest.fixture
def postgres_db(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with postgres_database() as url:
        yield _migrated(url, monkeypatch)
        reset_caches()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    """Runs the test on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "postgres_db")


@pytest.fixture(scope="session", autouse=True)
def _session_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's own redis-server: its data dir under the session's temp dir; started
    by the first test that needs Redis (none: never started), stopped at the end."""
    SESSION_REDIS.folder = tmp_path_factory.mktemp("session-redis")
    yield
    SESSION_REDIS.stop()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of the test's own on the session's redis-server (flushed before
    and after; the machine's Redis at 127.0.0.1:6379 is never touched)."""
    with redis_database() as url:
        yield url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that stop it or must not share one."""
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_rules() -> SmtpRules:
    return SmtpRules()


@pytest.fixture
def smtp_server(smtp_rules: SmtpRules, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    server = SmtpServer(smtp_rules).start()
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", server.url)
    reset_caches()
    yield server
    server.stop()
