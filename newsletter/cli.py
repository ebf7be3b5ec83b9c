"""The `newsletter` command: services, schema, lists and subscribers.

Further command groups live in newsletter/commands/, one module per capability.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from newsletter.commands import bounces, content, sending
from newsletter.commands.common import InputError, emit_json, handled, settings


@click.group()
@click.version_option(package_name="newsletter")
def main() -> None:
    """Newsletter delivery: subscriptions, digests, sending and bounces."""


# Services -----------------------------------------------------------------------


@main.command()
@click.option("--port", default=8000, show_default=True, help="Web port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@handled
def up(port: int, host: str) -> None:
    """Run web, worker, beat and the SMTP catcher together (the embedded default)."""
    from newsletter.runner import run_all

    sys.exit(run_all(settings(), host=host, port=port))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", "processes", default=1, show_default=True, help="Web processes.")
@handled
def web(host: str, port: int, processes: int) -> None:
    """Serve the web app and the admin API."""
    import uvicorn

    settings()
    uvicorn.run(
        "newsletter.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=processes,
        log_level="warning",
        access_log=False,
    )


@main.command()
@click.option("--concurrency", "-c", type=int, default=None, help="Processes (default: cores).")
@click.option("--pool", type=click.Choice(["prefork", "threads", "solo"]), default="prefork")
@click.option("--loglevel", default="INFO")
@click.option("--hostname", "-n", default=None, help="Node name, e.g. worker1@%h.")
@handled
def worker(concurrency: int | None, pool: str, loglevel: str, hostname: str | None) -> None:
    """Run a Celery worker."""
    settings()
    from workers.app import app

    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--pool={pool}",
        "--without-mingle",
        "--without-gossip",
    ]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)


@main.command()
@click.option("--loglevel", default="INFO")
@handled
def beat(loglevel: str) -> None:
    """Run the Celery beat scheduler (one per deployment)."""
    settings()
    from workers.app import app

    app.start(["beat", f"--loglevel={loglevel}"])


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default: the port of SMTP_URL.")
@handled
def catcher(host: str, port: int | None) -> None:
    """Run the built-in SMTP catcher alone (`up` starts it for you)."""
    import time

    from newsletter.mail.catcher import start_catcher

    s = settings()
    controller = start_catcher(s.outbox_dir, host, port or s.smtp.port)
    click.echo(f"SMTP catcher on {host}:{port or s.smtp.port}, keeping mail in {s.outbox_dir}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        controller.stop()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@handled
def db_upgrade(revision: str) -> None:
    """Apply the migrations (SQLite or PostgreSQL)."""
    from newsletter.migrate import upgrade

    upgrade(revision=revision)
    click.echo(f"database at {revision}")


# Lists ----------------------------------------------------------------------------


@main.group(name="lists")
def lists_group() -> None:
    """Mailing lists."""


@lists_group.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--schedule", default=None, help="Cron expression, e.g. '0 7 * * *'.")
@click.option("--timezone", default="UTC", show_default=True)
@handled
def lists_create(slug: str, name: str, schedule: str | None, timezone: str) -> None:
    from newsletter.db import session_scope
    from newsletter.lists import create_list

    with session_scope() as session:
        m = create_list(session, slug, name, schedule, timezone)
        click.echo(f"created list {m.slug}")


@lists_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@handled
def lists_list(as_json: bool) -> None:
    from newsletter.db import session_scope
    from newsletter.lists import list_records

    with session_scope() as session:
        rows = list_records(session)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        sched = f"  {r['schedule']} ({r['timezone']})" if r["schedule"] else ""
        click.echo(f"{r['slug']}\t{r['name']}{sched}")


# Subscribers ------------------------------------------------------------------------


@main.group(name="subscribers")
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
    from newsletter.subscriptions import ConsentRecord, Outcome, subscribe

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
    from newsletter.subscribers import import_csv

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
    from newsletter.subscribers import subscriber_records

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
    from newsletter.subscriptions import erase

    with session_scope() as session:
        found = erase(session, settings(), email)
    if not found:
        raise InputError(f"no subscriber {email}")
    click.echo(f"erased {email}; the address is suppressed")


for command in (
    content.stories,
    content.digest,
    sending.sends,
    bounces.bounces,
    bounces.bounce_server,
):
    main.add_command(command)
