"""The `newsletter` command: one group per capability, each in newsletter/commands/."""

from __future__ import annotations

import click

from newsletter.commands import (
    bounces,
    db,
    digest,
    lists,
    sends,
    services,
    stories,
    subscribers,
    up,
)


@click.group()
@click.version_option(package_name="newsletter")
def main() -> None:
    """Newsletter delivery: subscriptions, digests, sending and bounces."""


for command in (
    up.up,
    services.web,
    services.worker,
    services.beat,
    services.catcher,
    db.db,
    lists.lists_group,
    subscribers.subscribers_group,
    stories.stories,
    digest.digest,
    sends.sends,
    bounces.bounces,
    bounces.bounce_server,
):
    main.add_command(command)
