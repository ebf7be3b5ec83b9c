#!/usr/bin/env python3
"""Benchmark the `newsletter` command's start: wall time from the shell to its answer.

Each command runs in a new interpreter, as an operator's shell runs it, `--rounds` times;
the median is printed with the load average. `sends list` and `digest list` read a fresh
SQLite database (migrated once, before the rounds), so they time the whole command.

`--baseline REV` runs that git revision's code (exported with `git archive`, same venv)
in the same rounds, alternating with this checkout's, so the machine's drift falls on
both alike.

    python bench/cli.py [--rounds 7] [--baseline REV]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from revisions import export

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (
    ("--help",),
    ("--version",),
    ("digest", "--help"),
    ("sends", "list"),
    ("digest", "list", "--list", "news"),
)
RUN = "import sys; sys.argv[0] = 'newsletter'; from newsletter.cli import main; main()"


def run(code: Path, data: Path, args: tuple[str, ...]) -> float:
    env = {**os.environ, "PYTHONPATH": str(code), "NEWSLETTER_DATA_DIR": str(data)}
    env.pop("NEWSLETTER_DATABASE_URL", None)
    env.pop("NEWSLETTER_BROKER_URL", None)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUN, *args], env=env, cwd=data, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"newsletter {' '.join(args)} failed ({code}):\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", metavar="REV", help="also run this git revision's code")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"this": ROOT}
        if args.baseline:
            old = Path(tmp, "old")
            old.mkdir()
            versions = {args.baseline[:10]: export(args.baseline, old), **versions}
        data = Path(tmp, "data")
        data.mkdir()
        run(ROOT, data, ("db", "upgrade"))
        run(ROOT, data, ("lists", "create", "news", "--name", "News"))
        times: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        loads = []
        for _ in range(args.rounds):
            for command in COMMANDS:
                for version, code in versions.items():
                    times.setdefault((version, command), []).append(run(code, data, command))
            loads.append(os.getloadavg()[0])
        print(
            f"newsletter start to answer, median of {args.rounds} runs,"
            f" load {min(loads):.1f}-{max(loads):.1f}"
        )
        for command in COMMANDS:
            cells = "   ".join(
                f"{version} {statistics.median(times[(version, command)]):5.2f} s"
                for version in versions
            )
            print(f"  newsletter {' '.join(command):26} {cells}")


if __name__ == "__main__":
    main()
