"""`newsletter subscribers …`: add, import, list, export, erase."""

from __future__ import annotations

import sys
from typing import Any

import click

from newsletter.commands.common import InputError, emit_json, handled, settings


@click.group(name="subscribers")
def subscribers_group() -> None:
    """Subscribers: add, import, list, export, erase."""


@subscribers_group.command("add")
@click.argument("email")
@click.option("--list", "list_slug", required=True)
@click.option("--name", default="")
@click.option("--confirmed", is_flag=True, help="Skip the confirmation mail (consent on record).")
@handled
def subscribers_add(email: str, list_slug: str, name: str, confirmed: bool) -> None:
    from newsletter.db import session_scope
    from newsletter.subscriptions.consent import ConsentRecord, Outcome, subscribe

    with session_scope() as session:
        result = subscribe(
            session,
            settings(),
            email=email,
            name=name,
            list_slug=list_slug,
            consent=ConsentRecord(source="admin"),
            confirmed=confirmed,
        )
    if result.outcome is Outcome.suppressed:
        raise InputError(f"{email} is suppressed (erased, bounced or complained); not added")
    if result.send_confirmation and result.subscription_id is not None:
        from workers.tasks import send_confirmation

        send_confirmation.delay(result.subscription_id)
    click.echo(f"{email}: {result.outcome.value.replace('_', ' ')}")


@subscribers_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--list", "list_slug", required=True)
@click.option("--confirmed", is_flag=True)
@handled
def subscribers_import(file: Any, list_slug: str, confirmed: bool) -> None:
    """Import a CSV with columns email,name."""
    from newsletter.db import session_scope
    from newsletter.subscriptions.subscribers import import_csv

    try:
        with session_scope() as session:
            report = import_csv(session, settings(), file, list_slug, confirmed)
    except UnicodeDecodeError:
        raise InputError(f"{file.name}: not a UTF-8 text file") from None
    if report.pending_ids:
        from workers.tasks import send_confirmation

        for sid in report.pending_ids:
            send_confirmation.delay(sid)
    for line in report.invalid:
        click.echo(f"skipped {line}", err=True)
    click.echo(
        f"added {report.added}, confirmation sent {report.pending}, unchanged {report.unchanged}, "
        f"suppressed {report.suppressed}, invalid {len(report.invalid)}"
    )


def _records(list_slug: str | None) -> list[dict[str, Any]]:
    from newsletter.db import session_scope
    from newsletter.subscriptions.subscribers import subscriber_records

    with session_scope() as session:
        return [*subscriber_records(session, list_slug)]


@subscribers_group.command("list")
@click.option("--list", "list_slug", default=None)
@click.option("--json", "as_json", is_flag=True)
@handled
def subscribers_list(list_slug: str | None, as_json: bool) -> None:
    rows = _records(list_slug)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        subs = ", ".join(f"{k}:{v}" for k, v in r["subscriptions"].items())
        click.echo(f"{r['email']}\t{r['name']}\t{r['status']}\t{subs}")


@subscribers_group.command("export")
@click.option("--list", "list_slug", default=None)
@click.option("--json", "as_json", is_flag=True)
@handled
def subscribers_export(list_slug: str | None, as_json: bool) -> None:
    """CSV (email,name,status,subscriptions) or --json, to standard output."""
    import csv

    rows = _records(list_slug)
    if as_json:
        emit_json(rows)
        return
    out = csv.writer(sys.stdout)
    out.writerow(["email", "name", "status", "subscriptions"])
    for r in rows:
        subs = ";".join(f"{k}:{v}" for k, v in r["subscriptions"].items())
        out.writerow([r["email"], r["name"], r["status"], subs])


@subscribers_group.command("erase")
@click.argument("email")
@handled
def subscribers_erase(email: str) -> None:
    """Delete everything about a person; keep only an anonymous suppression hash."""
    from newsletter.db import session_scope
    from newsletter.subscriptions.erase import erase

    with session_scope() as session:
        found = erase(session, settings(), email)
    if not found:
        raise InputError(f"no subscriber {email}")
    click.echo(f"erased {email}; the address is suppressed")
