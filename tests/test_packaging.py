"""A plain `pip install .` (not editable) ships the templates and migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# pip's isolated build fetches setuptools: its own 300 s limit speaks first, not ours.
@pytest.mark.timeout(360)
def test_the_wheel_carries_templates_migrations_and_workers(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("newsletter-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "newsletter/templates/email/confirm/body.html",
        "newsletter/templates/email/confirm/subject.txt",
        "newsletter/templates/web/subscribe.html",
        "newsletter/templates/email/welcome/body.html",
        "newsletter/templates/email/preferences/subject.txt",
        "newsletter/i18n/locale/uk/LC_MESSAGES/messages.mo",  # compiled, committed
        "newsletter/i18n/locale/en/LC_MESSAGES/messages.mo",
        "newsletter/migrations/env.py",
        "newsletter/migrations/script.py.mako",
        "newsletter/migrations/versions/0001_initial_schema.py",
        "workers/tasks.py",
    ):
        assert name in names, name
    assert not any(n.startswith("tests/") for n in names)
