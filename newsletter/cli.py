"""The `newsletter` command: one group per capability, each in newsletter/commands/."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from newsletter import audit
from newsletter.commands.common import use_data_dir

# Each command's module is imported when that command runs, not at start-up: a long-lived
# `newsletter worker` (and its pool, forked from it) would otherwise hold every other
# command's libraries (image processing, feeds, DNS, the console's templates) for nothing.
COMMANDS: dict[str, str] = {
    "up": "up:up",
    "web": "services:web",
    "worker": "services:worker",
    "beat": "services:beat",
    "catcher": "services:catcher",
    "db": "db:db",
    "lists": "lists:lists_group",
    "segments": "segments:segments_group",
    "subscribers": "subscribers:subscribers_group",
    "stories": "stories:stories",
    "feeds": "feeds:feeds_group",
    "digest": "digest:digest",
    "sends": "sends:sends",
    "bounces": "bounces:bounces",
    "bounce-server": "bounces:bounce_server",
    "users": "users:users_group",
    "stats": "stats:stats_group",
    "webhooks": "webhooks:webhooks_group",
}


class LazyGroup(click.Group):
    """A group whose subcommands are loaded by name from COMMANDS on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command = getattr(importlib.import_module(f"newsletter.commands.{module}"), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="newsletter")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the data lives (default ./var); the same as NEWSLETTER_DATA_DIR.",
)
def main(data_dir: Path | None) -> None:
    """Newsletter delivery: subscriptions, digests, sending and bounces."""
    # Whoever has the shell has the data: the CLI acts as an owner, named in the audit log.
    audit.set_actor(audit.Actor(f"cli:{_shell_user()}", "cli", "owner"))
    if data_dir is not None:
        use_data_dir(data_dir)


def _shell_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
