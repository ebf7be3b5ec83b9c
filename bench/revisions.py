"""A git revision's code beside this checkout's, for the benchmarks' --baseline."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export(rev: str, into: Path) -> Path:
    """That revision's code, as `git archive` gives it (no worktree, nothing changed in .git)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "newsletter", "workers", "templates"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
