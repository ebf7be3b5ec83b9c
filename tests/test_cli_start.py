"""`newsletter --help` and `--version` answer without loading any command or the database
layer (bench/cli.py measures the time), and the listing says what each command's own
help says."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import COMMANDS, main

# Run in a fresh interpreter: this one has imported everything already.
PROBE = """
import json, sys
from newsletter.cli import main
try:
    main(sys.argv[1:], prog_name="newsletter")
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "celery", "pydantic")
               or m.startswith("newsletter.commands"))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def probe(*args: str) -> tuple[str, dict]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60
    )
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_listed_summary_is_the_first_paragraph_of_that_commands_help(name: str) -> None:
    module, attr = COMMANDS[name][0].split(":")
    command = getattr(importlib.import_module(f"newsletter.commands.{module}"), attr)
    assert isinstance(command, click.Command)
    assert command.help is not None
    assert COMMANDS[name][1] == command.help.split("\n\n")[0].strip()


def test_help_lists_every_command_whole_without_loading_one() -> None:
    out, seen = probe("--help")
    assert seen == {"code": 0, "heavy": []}
    # Each whole (wrapped, not cut off with "..."), beside its name.
    words = " ".join(out.split())
    for name, (_, summary) in COMMANDS.items():
        assert f" {name} {summary}" in words
    assert "..." not in out.split("Commands:")[1]


def test_version_loads_no_command() -> None:
    out, seen = probe("--version")
    assert seen == {"code": 0, "heavy": []}
    assert out.startswith("newsletter, version ")


def test_a_command_still_loads_when_it_is_run() -> None:
    result = CliRunner().invoke(main, ["db", "--help"])
    assert result.exit_code == 0
    assert "upgrade" in result.output
    unknown = CliRunner().invoke(main, ["no-such-command"])
    assert unknown.exit_code == 2
    assert "No such command 'no-such-command'" in unknown.output
