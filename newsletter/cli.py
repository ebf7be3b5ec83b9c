"""The `newsletter` command: one group per capability, each in newsletter/commands/."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

# Each command's module is imported when that command runs, not at start-up: a long-lived
# `newsletter worker` (and its pool, forked from it) would otherwise hold every other
# command's libraries (image processing, feeds, DNS, the console's templates) for nothing.
# Beside each, the first paragraph of its help, so `newsletter --help` lists them without
# importing any (tests/test_cli_start.py holds the two equal).
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("up:up", "Run web, worker, beat and the SMTP catcher together (the embedded default)."),
    "web": ("services:web", "Serve the web app and the admin API."),
    "worker": ("services:worker", "Run a Celery worker."),
    "beat": ("services:beat", "Run the Celery beat scheduler (one per deployment)."),
    "catcher": (
        "services:catcher",
        "Run the built-in SMTP catcher alone (`up` starts it for you).",
    ),
    "db": ("db:db", "Database schema."),
    "lists": ("lists:lists_group", "Mailing lists: create, update, delete, list."),
    "segments": (
        "segments:segments_group",
        "Segments: saved filters over a list's readers, with a live count.",
    ),
    "subscribers": (
        "subscribers:subscribers_group",
        "Subscribers: add, import, list, export, erase.",
    ),
    "stories": ("stories:stories", "Stories: add files, import feeds, list."),
    "feeds": (
        "feeds:feeds_group",
        "Feeds polled by beat (every FEED_POLL_MINUTES): add, list, remove, poll now.",
    ),
    "digest": ("digest:digest", "Digests: compose, preview, preflight, test, send, list."),
    "sends": (
        "sends:sends",
        "Sends: list, status, pause, resume, cancel, retry, approve, reject.",
    ),
    "bounces": (
        "bounces:bounces",
        "Bounces and complaints: ingest, list, lift suppressions, poll the mailbox.",
    ),
    "bounce-server": (
        "bounces:bounce_server",
        "Receive DSNs and complaints for BOUNCE_DOMAIN over SMTP (VERP addresses only).",
    ),
    "users": ("users:users_group", "Operator accounts: create, list, disable, API tokens."),
    "stats": (
        "stats:stats_group",
        "The console's maintained counts (beat refreshes them every STATS_REFRESH_SECONDS).",
    ),
    "webhooks": (
        "webhooks:webhooks_group",
        "URLs that get a signed POST for each event: add, list, remove, log.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are loaded by name from COMMANDS on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr = COMMANDS[cmd_name][0].split(":")
        command = getattr(importlib.import_module(f"newsletter.commands.{module}"), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing from COMMANDS: whole summaries, wrapped, and no command imported."""
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


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
    # Imported here, not at the top: `--help` and `--version` need no database layer.
    from newsletter import audit
    from newsletter.commands.common import use_data_dir

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
