"""A worker parses its DKIM keys once, before its pool forks: a pool child signs its first
message with the parent's parsed key (bench/send.py measures the first message), and a
key that cannot be read does not stop the worker from starting. SQLAlchemy's mappers are
configured before the fork too. A worker without DKIM never loads cryptography."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.config import get_settings
from newsletter.mail import dkim
from newsletter.mail.dkim import keys_from_settings
from tests.send_support import dkim_keys
from workers import tasks


def child_signs_without_parsing() -> bool:
    """A forked child, as a pool process is: it gets both keys without parsing a file."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        parsed = dkim._parsed_key.cache_info().misses
        keys = keys_from_settings(get_settings())
        unparsed = dkim._parsed_key.cache_info().misses == parsed
        os._exit(0 if len(keys) == 2 and unparsed else 1)
    return os.waitpid(pid, 0)[1] == 0


def in_new_interpreter(code: str, tmp_path: Path, **settings: str) -> str:
    """Run `code` in a new Python on a SQLite database of its own, with no DKIM settings
    but `settings`; returns what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_DKIM_")}
    env |= {
        "NEWSLETTER_DATA_DIR": str(tmp_path),
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        **settings,
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_keys_are_parsed_before_the_fork_and_reused_in_the_child(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rsa_path, ed_path = dkim_keys(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DKIM_DOMAIN", "example.com")
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY_FILE", str(rsa_path))
    monkeypatch.setenv("NEWSLETTER_DKIM_ED25519_KEY_FILE", str(ed_path))
    get_settings.cache_clear()
    dkim._parsed_key.cache_clear()
    tasks._parse_signing_keys()
    assert dkim._parsed_key.cache_info().currsize == 2
    assert child_signs_without_parsing()


def test_a_key_that_cannot_be_read_leaves_the_worker_starting(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY_FILE", str(tmp_path / "missing.pem"))
    get_settings.cache_clear()
    tasks._parse_signing_keys()  # no exception: the send that needs the key says what is wrong
    with pytest.raises(Exception, match="NEWSLETTER_DKIM_KEY_FILE"):
        keys_from_settings(get_settings())


def test_the_mappers_are_configured_before_the_fork(tmp_path: Path) -> None:
    """The worker's start-up hook leaves SQLAlchemy nothing to configure at a child's first
    query (a new interpreter: the test process's own mappers are configured already)."""
    code = (
        "from workers import tasks\n"
        "from newsletter.models import Delivery, Subscriber\n"
        "assert not Delivery.__mapper__.configured\n"
        "tasks._pool_size()\n"
        "assert Delivery.__mapper__.configured and Subscriber.__mapper__.configured\n"
    )
    in_new_interpreter(code, tmp_path)


@pytest.mark.parametrize("with_key", [False, True])
def test_cryptography_is_loaded_only_where_a_key_signs(with_key: bool, tmp_path: Path) -> None:
    """Without DKIM a worker never loads cryptography's library (5-6 MB read into each
    process); with a key, the start-up hook loads it before the fork, for the children
    to share."""
    code = (
        "import sys\n"
        "from workers import tasks\n"
        "tasks._pool_size()\n"
        "print('cryptography.hazmat.bindings._rust' in sys.modules)\n"
    )
    key = {"NEWSLETTER_DKIM_KEY_FILE": str(dkim_keys(tmp_path)[0])} if with_key else {}
    assert in_new_interpreter(code, tmp_path, **key) == str(with_key)
