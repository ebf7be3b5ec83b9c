"""`newsletter webhooks …`: outgoing webhooks (newsletter/webhooks/)."""

from __future__ import annotations

import click

from newsletter.commands.common import emit_json, handled, perform
from newsletter.webhooks import actions
from newsletter.webhooks.events import EVENT_TYPES


@click.group(name="webhooks")
def webhooks_group() -> None:
    """URLs that get a signed POST for each event: add, list, remove, log."""


@webhooks_group.command("add")
@click.argument("url")
@click.option(
    "--events",
    required=True,
    metavar="TYPE[,TYPE...]",
    help=f"Comma-separated: {','.join(EVENT_TYPES)}.",
)
@click.option("--description", default=None, help="A note for the operators (one line).")
@click.option("--json", "as_json", is_flag=True)
@handled
def webhooks_add(url: str, events: str, description: str | None, as_json: bool) -> None:
    """Register URL; prints its id and its signing secret, which is shown only now."""
    created = perform(actions.add_webhook, url, events, description)
    if as_json:
        emit_json({**created.record, "secret": created.secret})
        return
    click.echo(f"added webhook {created.record['id']} {created.record['url']}")
    click.echo(f"secret: {created.secret}")
    click.echo("The secret is shown only now: keep it to check X-Newsletter-Signature.")


@webhooks_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@handled
def webhooks_list(as_json: bool) -> None:
    """The endpoints, their events and their deliveries so far."""
    rows = perform(actions.list_webhooks)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no webhooks")
    for r in rows:
        last = f", last {r['last_status']}" if r["last_status"] else ""
        code = f" ({r['last_code']})" if r["last_code"] is not None else ""
        click.echo(
            f"{r['id']}  {r['url']}  {','.join(r['events'])}  "  # type: ignore[arg-type]
            f"{r['delivered']}/{r['deliveries']} delivered, {r['pending']} pending, "
            f"{r['failed']} failed{last}{code}"
        )


@webhooks_group.command("remove")
@click.argument("endpoint_id", type=int)
@handled
def webhooks_remove(endpoint_id: int) -> None:
    """Stop posting to it (its delivery log stays; pending deliveries are dropped)."""
    record = perform(actions.remove_webhook, endpoint_id)
    click.echo(f"removed webhook {record['id']} {record['url']}")


@webhooks_group.command("log")
@click.argument("endpoint_id", type=int)
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handled
def webhooks_log(endpoint_id: int, limit: int, as_json: bool) -> None:
    """Its most recent deliveries, newest first."""
    rows = perform(actions.get_webhook_log, endpoint_id, limit)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no deliveries yet")
    for r in rows:
        code = r["last_code"] if r["last_code"] is not None else "-"
        error = ""
        if r["last_error"]:
            said = "earlier: " if r["status"] == "delivered" else ""
            error = f"  ({said}{r['last_error']})"
        click.echo(
            f"{r['created_at']}  {r['type']}  {r['event_id']}  {r['status']}  "
            f"attempts {r['attempts']}  code {code}{error}"
        )
