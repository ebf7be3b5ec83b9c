"""`newsletter subscribers …`: add, import, list, export, erase."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

import click

from newsletter.commands.common import InputError, emit_json, handled, perform
from newsletter.subscriptions import actions, editing


@click.group(name="subscribers")
def subscribers_group() -> None:
    """Subscribers: add, import, list, export, erase."""


@subscribers_group.command("add")
@click.argument("email")
@click.option("--list", "list_slug", required=True)
@click.option("--name", default="")
@click.option("--confirmed", is_flag=True, help="Skip the confirmation mail (consent on record).")
@click.option(
    "--attr",
    "attrs",
    multiple=True,
    metavar="NAME=VALUE",
    help="An attribute of the reader (repeatable), e.g. --attr city=Kyiv.",
)
@click.option("--json", "as_json", is_flag=True)
@handled
def subscribers_add(
    email: str, list_slug: str, name: str, confirmed: bool, attrs: tuple[str, ...], as_json: bool
) -> None:
    """Add one address; refused (exit 2) for a reader who left, complained, bounced or was
    erased."""
    attributes = _attributes(attrs)
    record = perform(actions.add_subscriber, email, list_slug, name, confirmed, attributes)
    if as_json:
        emit_json(record)
    else:
        click.echo(f"{email}: {record['outcome'].replace('_', ' ')}")


def _attributes(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    if not pairs:
        return None
    found: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise InputError(f"--attr {pair!r}: give NAME=VALUE, e.g. --attr city=Kyiv")
        found[name.strip()] = value
    return found


@subscribers_group.command("attributes")
@click.argument("email")
@click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE", help="Set one (repeatable).")
@click.option("--unset", "names", multiple=True, metavar="NAME", help="Remove one (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@handled
def subscribers_attributes(
    email: str, pairs: tuple[str, ...], names: tuple[str, ...], as_json: bool
) -> None:
    """Show a reader's attributes, or change them with --set and --unset."""
    changes: dict[str, Any] = {**(_attributes(pairs) or {}), **{n: None for n in names}}
    record = perform(editing.set_attributes, email, changes)
    if as_json:
        emit_json(record)
        return
    for key, value in sorted(record["attributes"].items()):
        click.echo(f"{key}={value}")


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
    """Import a CSV with columns email,name (and language, timezone); every other
    column is an attribute named by its header (a bad header: nothing is imported).

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
    """CSV (email,name,status,subscriptions,language,timezone,attributes as JSON) or
    --json, to standard output."""
    rows = perform(actions.list_subscribers, list_slug)
    if as_json:
        emit_json(rows)
        return
    out = csv.writer(sys.stdout)
    out.writerow(["email", "name", "status", "subscriptions", "language", "timezone", "attributes"])
    for r in rows:
        subs = ";".join(f"{k}:{v}" for k, v in r["subscriptions"].items())  # type: ignore[attr-defined]
        attributes = json.dumps(r["attributes"], ensure_ascii=False, sort_keys=True)
        out.writerow(
            [
                r["email"],
                r["name"],
                r["status"],
                subs,
                r["language"] or "",
                r["timezone"] or "",
                attributes,
            ]
        )


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
