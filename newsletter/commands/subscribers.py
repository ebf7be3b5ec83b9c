"""`newsletter subscribers …`: add, import, list, export, erase."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click

from newsletter.commands.common import emit_json, handled, perform
from newsletter.subscriptions import actions


@click.group(name="subscribers")
def subscribers_group() -> None:
    """Subscribers: add, import, list, export, erase."""


@subscribers_group.command("add")
@click.argument("email")
@click.option("--list", "list_slug", required=True)
@click.option("--name", default="")
@click.option("--confirmed", is_flag=True, help="Skip the confirmation mail (consent on record).")
@click.option("--json", "as_json", is_flag=True)
@handled
def subscribers_add(email: str, list_slug: str, name: str, confirmed: bool, as_json: bool) -> None:
    """Add one address; refused (exit 2) for a reader who left, complained, bounced or was
    erased."""
    record = perform(actions.add_subscriber, email, list_slug, name, confirmed)
    if as_json:
        emit_json(record)
    else:
        click.echo(f"{email}: {record['outcome'].replace('_', ' ')}")


@subscribers_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--list", "list_slug", required=True)
@click.option("--confirmed", is_flag=True)
@click.option("--dry-run", is_flag=True, help="Report what the import would do; change nothing.")
@click.option("--json", "as_json", is_flag=True)
@handled
def subscribers_import(
    file: Any, list_slug: str, confirmed: bool, dry_run: bool, as_json: bool
) -> None:
    """Import a CSV with columns email,name.

    Rows for readers who unsubscribed from the list, complained, bounced or were erased
    are skipped with their reason (--json: "skipped"), with or without --confirmed.
    """
    from newsletter.errors import InvalidInput

    action = actions.preview_import if dry_run else actions.import_subscribers
    try:
        report = perform(action, file, list_slug, confirmed)
    except InvalidInput as exc:
        if exc.field == "file":
            exc.message = f"{file.name}: {exc.message}"
        raise
    if as_json:
        emit_json(report)
        return
    for row in report["skipped"]:
        click.echo(f"skipped line {row['line']}: {row['email']}: {row['reason']}", err=True)
    for line in report["invalid"]:
        click.echo(f"skipped {line}", err=True)
    click.echo(
        ("dry run, nothing changed: would have " if dry_run else "")
        + f"added {report['added']}, confirmation sent {report['confirmation_sent']}, "
        f"unchanged {report['unchanged']}, skipped {len(report['skipped'])}, "
        f"invalid {len(report['invalid'])}"
    )


@subscribers_group.command("list")
@click.option("--list", "list_slug", default=None)
@click.option("--json", "as_json", is_flag=True)
@handled
def subscribers_list(list_slug: str | None, as_json: bool) -> None:
    rows = perform(actions.list_subscribers, list_slug)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        subs = ", ".join(f"{k}:{v}" for k, v in r["subscriptions"].items())  # type: ignore[attr-defined]
        click.echo(f"{r['email']}\t{r['name']}\t{r['status']}\t{subs}")


@subscribers_group.command("export")
@click.option("--list", "list_slug", default=None)
@click.option("--json", "as_json", is_flag=True)
@handled
def subscribers_export(list_slug: str | None, as_json: bool) -> None:
    """CSV (email,name,status,subscriptions) or --json, to standard output."""
    rows = perform(actions.list_subscribers, list_slug)
    if as_json:
        emit_json(rows)
        return
    out = csv.writer(sys.stdout)
    out.writerow(["email", "name", "status", "subscriptions"])
    for r in rows:
        subs = ";".join(f"{k}:{v}" for k, v in r["subscriptions"].items())  # type: ignore[attr-defined]
        out.writerow([r["email"], r["name"], r["status"], subs])


@subscribers_group.command("erase")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
@handled
def subscribers_erase(email: str, as_json: bool) -> None:
    """Delete everything about a person; keep only an anonymous suppression hash."""
    record = perform(actions.erase_subscriber, email)
    if as_json:
        emit_json(record)
    else:
        click.echo(f"erased {email}; the address is suppressed")
