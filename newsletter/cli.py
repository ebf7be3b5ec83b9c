"""The `newsletter` command: one group per capability, each in newsletter/commands/."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter import audit
from newsletter.commands import (
    bounces,
    db,
    digest,
    feeds,
    lists,
    segments,
    sends,
    services,
    stats,
    stories,
    subscribers,
    up,
    users,
    webhooks,
)
from newsletter.commands.common import use_data_dir


@click.group()
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


for command in (
    up.up,
    services.web,
    services.worker,
    services.beat,
    services.catcher,
    db.db,
    lists.lists_group,
    segments.segments_group,
    subscribers.subscribers_group,
    stories.stories,
    feeds.feeds_group,
    digest.digest,
    sends.sends,
    bounces.bounces,
    bounces.bounce_server,
    users.users_group,
    stats.stats_group,
    webhooks.webhooks_group,
):
    main.add_command(command)
