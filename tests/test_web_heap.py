"""`newsletter web` settles its heap before it serves: the libraries a sign-up uses are
loaded and frozen out of the collector, so a full collection no longer stops every
request in flight for tens of milliseconds. Run in a fresh interpreter, as the command
runs it, with the database and the broker unreachable: settling connects to neither."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import gc, json, sys
connects = []
sys.addaudithook(lambda event, args: event == "socket.connect" and connects.append(repr(args)))
from newsletter.web.app import GC_YOUNG_THRESHOLD, serve_app
app = serve_app()
print(json.dumps({
    "routes": len(app.routes),
    "frozen": gc.get_freeze_count(),
    "scanned": len(gc.get_objects()),
    "young_threshold": gc.get_threshold()[0],
    "expected_threshold": GC_YOUNG_THRESHOLD,
    "loaded": [m for m in ("workers.tasks", "psycopg", "workers.redisbroker") if m in sys.modules],
    "connects": connects,
}))
"""


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_DATA_DIR=str(tmp_path), **settings)
    return env


def _run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_served_app_has_its_heap_frozen_and_connects_to_nothing(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        NEWSLETTER_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/nothing",
        NEWSLETTER_BROKER_URL="redis://127.0.0.1:1/0",
    )
    found = json.loads(_run(PROBE, env))
    assert found["routes"] > 10
    assert found["connects"] == []  # neither the database nor the broker was asked
    # What a full collection still scans is a small part of what the process holds.
    assert found["frozen"] > 50_000
    assert found["scanned"] < found["frozen"] / 10
    default = int(_run("import gc; print(gc.get_threshold()[0])", env))
    assert found["young_threshold"] == found["expected_threshold"] > default
    # The sign-up path's task modules, database driver and broker transport are loaded.
    assert found["loaded"] == ["workers.tasks", "psycopg", "workers.redisbroker"]


def test_the_app_tests_build_keeps_the_collector_as_it_was(tmp_path: Path) -> None:
    env = _env(tmp_path)
    default = _run("import gc; print(gc.get_threshold()[0])", env)
    built = _run(
        "import gc\nfrom newsletter.web.app import create_app\n"
        "create_app()\nprint(gc.get_freeze_count(), gc.get_threshold()[0])",
        env,
    )
    assert built.split() == ["0", default]
