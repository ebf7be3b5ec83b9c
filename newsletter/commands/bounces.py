"""`newsletter bounces …` and `newsletter bounce-server`.

- ``bounces ingest FILE…``: .eml/.mbox files; all parsed before anything is written, a
  file with no bounce in it exits 2 naming the file.
- ``bounces list [--json]``: recent events, totals, policy blocks per receiving domain,
  refused input. ``--json`` prints one object with ``events``, ``totals``,
  ``policy_by_domain`` and ``rejected``.
- ``bounces unsuppress EMAIL``: lift a suppression (operator knows the address works).
- ``bounces poll``: read the bounce mailbox once (beat does it every minute).
- ``bounce-server [--host H] [--port P] [--processes N]``: the inbound SMTP server for
  BOUNCE_DOMAIN, N processes on one port (SO_REUSEPORT; default one per CPU on
  PostgreSQL, 1 on SQLite, where more are refused).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from newsletter.bounces import actions
from newsletter.commands.common import (
    InputError,
    ServiceError,
    emit_json,
    handled,
    perform,
    settings,
)


@click.group(name="bounces")
def bounces() -> None:
    """Bounces and complaints: ingest, list, lift suppressions, poll the mailbox."""


@bounces.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@handled
def ingest_cmd(files: tuple[Path, ...], as_json: bool) -> None:
    """Record the bounces in .eml or .mbox FILES (an operator's mailbox export)."""
    report = perform(actions.ingest_files, list(files))
    if as_json:
        emit_json(report)
        return
    for line in report["skipped"]:
        click.echo(f"skipped {line}", err=True)
    done = ", ".join(f"{k} {v}" for k, v in report["actions"].items()) or "nothing"
    click.echo(f"{report['messages']} bounce messages from {len(files)} files: {done}")


@bounces.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--kind", type=click.Choice(["hard", "soft", "policy", "complaint", "ignore"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650))
@handled
def list_cmd(as_json: bool, kind: str | None, limit: int, days: int) -> None:
    """Recent bounces, and policy blocks counted per receiving domain."""
    report = perform(actions.report, limit=limit, kind=kind, days=days)
    if as_json:
        emit_json(report)
        return
    totals = ", ".join(f"{k} {v}" for k, v in report["totals"].items())
    click.echo(f"last {days} days: {totals}")
    if report["policy_by_domain"]:
        click.echo("policy blocks by receiving domain (our sending is the problem):")
        for row in report["policy_by_domain"]:
            click.echo(f"  {row['domain']}\t{row['count']}\tlast {row['last']}")
    if report["rejected"]:
        click.echo("refused input:")
        for row in report["rejected"]:
            click.echo(f"  {row['source']}\t{row['reason']}\t{row['count']}")
    for e in report["events"]:
        status = e["status"] or "-"
        click.echo(
            f"{e['at']}\t{e['email'] or '-'}\t{e['kind']}\t{e['reason']}\t{status}\t"
            f"{e['remote_domain'] or '-'}\t{e['source']}"
        )


@bounces.command("unsuppress")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
@handled
def unsuppress_cmd(email: str, as_json: bool) -> None:
    """Lift the suppression of EMAIL and make the subscriber active again."""
    record = perform(actions.unsuppress, email)
    if as_json:
        emit_json(record)
    else:
        click.echo(f"{email}: suppression lifted")


@bounces.command("poll")
@click.option("--json", "as_json", is_flag=True)
@handled
def poll_cmd(as_json: bool) -> None:
    """Read NEWSLETTER_BOUNCE_MAILBOX_URL once and record what is there."""
    report = perform(actions.poll)
    if as_json:
        emit_json(report)
        return
    click.echo(
        f"fetched {report['fetched']}, recorded {report['recorded']}, "
        f"refused {report['refused']}, failed {report['failed']}"
    )


@click.command("bounce-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2525, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    # One Python process is CPU-bound on SMTP and parsing: on this 2-core host two
    # stored 18% more DSNs a second than one (bench/bounces.py --processes 2).
    help="Server processes sharing the port [default: one per CPU on PostgreSQL, 1 on SQLite].",
)
@handled
def bounce_server(host: str, port: int, processes: int | None) -> None:
    """Receive DSNs and complaints for BOUNCE_DOMAIN over SMTP (VERP addresses only)."""
    from newsletter.bounces.server import listening_sockets, serve

    s = settings()
    sqlite = s.database.startswith("sqlite")
    if processes is None:
        processes = 1 if sqlite else os.cpu_count() or 1
    if processes > 1 and sqlite:
        # One writer at a time: more processes would only queue on its lock.
        raise InputError("--processes above 1 needs PostgreSQL (SQLite has one writer)")
    try:
        socks = listening_sockets(host, port, processes)
    except OSError as exc:
        raise ServiceError(f"cannot listen on {host}:{port}: {exc}") from None
    plural = "es" if processes > 1 else ""
    click.echo(
        f"bounce-server for {s.bounces_domain} on {host}:{port}, {processes} process{plural}"
    )
    sys.exit(serve(s, socks))
