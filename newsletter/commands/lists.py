"""`newsletter lists …`: mailing lists."""

from __future__ import annotations

import sys
from typing import Any

import click

from newsletter.commands.common import InputError, emit_json, handled, perform
from newsletter.subscriptions import actions, lists


@click.group(name="lists")
def lists_group() -> None:
    """Mailing lists: create, update, delete, list."""


def _show(record: dict[str, Any], verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(record)
    else:
        click.echo(f"{verb} list {record['slug']}")


def _audience_options(func: Any) -> Any:
    """The audience options `create` and `update` share."""
    for option in reversed(
        [
            click.option(
                "--welcome/--no-welcome",
                default=None,
                help="Mail a welcome after confirmation (templates/email/welcome/).",
            ),
            click.option(
                "--local-time",
                default=None,
                metavar="HH:MM",
                help="Deliver each digest at this time in every reader's own time zone "
                "('none' to send at once).",
            ),
            click.option(
                "--track-clicks/--no-track-clicks",
                default=None,
                help="Signed click redirects counted per story and reader (off by default).",
            ),
            click.option(
                "--track-opens/--no-track-opens",
                default=None,
                help="An open pixel (off by default; needs --track-clicks to mean much).",
            ),
            click.option(
                "--sunset-after",
                type=int,
                default=None,
                metavar="N",
                help="Ask readers with no click in N digests if they still want it (0: never).",
            ),
            click.option(
                "--weekly",
                default=None,
                metavar="CRON",
                help="Offer a weekly round-up at this cron time ('none' to stop offering it).",
            ),
            click.option(
                "--form-field",
                "form_fields",
                multiple=True,
                metavar="NAME[:LABEL][!]",
                help="An extra sign-up field kept as an attribute; '!' makes it required. "
                "Repeat for more; 'none' for no extra fields.",
            ),
        ]
    ):
        func = option(func)
    return func


def _options(
    welcome: bool | None,
    local_time: str | None,
    track_clicks: bool | None,
    track_opens: bool | None,
    sunset_after: int | None,
    weekly: str | None,
    form_fields: tuple[str, ...],
) -> lists.Options:
    fields = lists.field_specs(form_fields) if form_fields else None
    return lists.Options(
        welcome=welcome,
        local_time=local_time,
        track_clicks=track_clicks,
        track_opens=track_opens,
        sunset_after=sunset_after,
        weekly=weekly,
        form_fields=fields,
    )


@lists_group.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--schedule", default=None, help="Cron expression, e.g. '0 7 * * *'.")
@click.option("--timezone", default="UTC", show_default=True)
@click.option(
    "--template-dir",
    default=None,
    help="Folder of the list's own subject.txt, body.txt, body.html (extending "
    "builtin/digest/...); tried with a sample digest first.",
)
@_audience_options
@click.option("--json", "as_json", is_flag=True)
@handled
def lists_create(
    slug: str,
    name: str,
    schedule: str | None,
    timezone: str,
    template_dir: str | None,
    as_json: bool,
    **audience: Any,
) -> None:
    record = perform(
        actions.create_list,
        slug,
        name,
        schedule,
        timezone,
        template_dir,
        options=_options(**audience),
    )
    _show(record, "created", as_json)


@lists_group.command("update")
@click.argument("slug")
@click.option("--name", default=None)
@click.option("--schedule", default=None, help="Cron expression; '' or 'none' for no schedule.")
@click.option("--timezone", default=None)
@click.option(
    "--template-dir",
    default=None,
    help="Folder of the list's own digest templates; '' or 'none' for the built-in ones.",
)
@_audience_options
@click.option("--json", "as_json", is_flag=True)
@handled
def lists_update(
    slug: str,
    name: str | None,
    schedule: str | None,
    timezone: str | None,
    template_dir: str | None,
    as_json: bool,
    **audience: Any,
) -> None:
    """Change a list's name, schedule, time zone or templates (its slug stays: links
    carry it)."""
    clear = schedule is not None and schedule.strip().lower() in ("", "none")
    builtin = template_dir is not None and template_dir.strip().lower() in ("", "none")
    record = perform(
        actions.update_list,
        slug,
        name=name,
        schedule=None if clear else schedule,
        timezone=timezone,
        clear_schedule=clear,
        template_dir=None if builtin else template_dir,
        clear_template_dir=builtin,
        options=_options(**audience),
    )
    _show(record, "updated", as_json)


@lists_group.command("delete")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask; needed without a terminal.")
@click.option("--json", "as_json", is_flag=True)
@handled
def lists_delete(slug: str, yes: bool, as_json: bool) -> None:
    """Delete a list with its subscriptions and digests; the subscribers stay."""
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"deleting {slug} needs --yes")
        click.confirm(f"Delete list {slug} with its subscriptions and digests?", abort=True)
    record = perform(actions.delete_list, slug)
    if as_json:
        emit_json(record)
    else:
        click.echo(
            f"deleted list {slug} ({record['subscriptions']} subscriptions, "
            f"{record['digests']} digests)"
        )


@lists_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@handled
def lists_list(as_json: bool) -> None:
    rows = perform(actions.list_lists)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        sched = f"  {r['schedule']} ({r['timezone']})" if r["schedule"] else ""
        click.echo(f"{r['slug']}\t{r['name']}{sched}")
