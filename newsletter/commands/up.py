"""`newsletter up`: web, worker, beat and the catcher as one foreground command.

Each service is its own process, started exactly as an operator would start it alone,
so the embedded default exercises the same code paths as production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click

from newsletter.commands.common import ServiceError, handled, settings
from newsletter.config import Settings
from workers import gateway

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _ensure_list(settings: Settings) -> str | None:
    """A fresh install gets one list, so the form works at once."""
    from newsletter.subscriptions import actions

    if gateway.perform(actions.list_lists):
        return None
    gateway.perform(actions.create_list, "news", "The Newsroom Daily", "0 7 * * *", "UTC")
    return "news"


SERVICES = ("web", "worker", "beat")


def _log_files(settings: Settings) -> dict[str, IO[bytes]]:
    """One append-only log per service in <data dir>/logs, each run marked by a line."""
    folder = settings.data_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    files: dict[str, IO[bytes]] = {}
    for name in SERVICES:
        log = open(folder / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        log.write(f"--- newsletter up, {stamp} ---\n".encode())
        log.flush()
        files[name] = log
    return files


def _console_hint() -> str:
    """How to log in: an account must exist first (nobody gets a default password)."""
    from sqlalchemy import select

    from newsletter.db import session_scope
    from newsletter.models import User

    try:
        with session_scope() as session:
            if session.scalar(select(User.id).limit(1)) is not None:
                return ""
    except Exception:  # noqa: BLE001 - a hint only; the services report real errors
        return ""
    return "(first: newsletter users create you@example.org --role owner)"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_all(settings: Settings, host: str, port: int, verbose: bool = False) -> int:
    from newsletter.mail.catcher import start_catcher
    from newsletter.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade()
    created = _ensure_list(settings)
    # The banner points at var/admin_token: it must be there before anyone reads it.
    settings.ensure_secrets()
    catcher = None
    if settings.smtp.host in LOOPBACK and not settings.smtp.username:
        try:
            catcher = start_catcher(settings.outbox_dir, "127.0.0.1", settings.smtp.port)
        except OSError as exc:
            raise ServiceError(
                f"cannot start the SMTP catcher on port {settings.smtp.port}: {exc.strerror}; "
                "stop what uses it or set NEWSLETTER_SMTP_URL to another port"
            ) from None

    base = f"http://{host}:{port}"
    env = dict(os.environ)
    hint = ""
    if "base_url" not in settings.model_fields_set and settings.base_url != base:
        # Links in mail must point at this web server; other commands need to know it too.
        env["NEWSLETTER_BASE_URL"] = base
        hint = f"  note            run other commands with NEWSLETTER_BASE_URL={base}"
    cmd = [sys.executable, "-m", "newsletter"]
    args = {
        "web": ["web", "--host", host, "--port", str(port)],
        "worker": ["worker", "--loglevel", "WARNING"],
        "beat": ["beat", "--loglevel", "WARNING"],
    }
    # The services' own output (Celery's banner, its warnings) goes to files unless asked
    # for: what a person sees here is this command's lines.
    logs = {} if verbose else _log_files(settings)
    procs = {
        name: subprocess.Popen(
            [*cmd, *args[name]],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logs.get(name),
            stderr=subprocess.STDOUT if name in logs else None,
        )
        for name in SERVICES
    }
    for log in logs.values():
        log.close()  # the children hold their own copies
    click.echo(f"newsletter is up ({'embedded' if settings.embedded else 'external'} services)")
    click.echo(f"  subscribe form  {base}/subscribe")
    if catcher is not None:
        click.echo(f"  outbox          {base}/outbox   (SMTP catcher on port {settings.smtp.port})")
    click.echo(f"  console         {base}/console   {_console_hint()}")
    click.echo(f"  health          {base}/healthz")
    click.echo(
        f"  admin API       {base}/api/docs   (token in {settings.data_dir / 'admin_token'})"
    )
    click.echo(f"  data            {settings.data_dir.resolve()}")
    if logs:
        files = ", ".join(f"{name}.log" for name in SERVICES)
        click.echo(
            f"  logs            {settings.data_dir / 'logs'}/{files}   (up --verbose shows them)"
        )
    if created:
        click.echo(f"  created list '{created}' to start with")
    if hint:
        click.echo(hint)
    click.echo("Press Ctrl-C to stop.")

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    click.echo(f"{name} exited with code {proc.returncode}; stopping", err=True)
                    if logs:
                        log_path = settings.data_dir / "logs" / f"{name}.log"
                        click.echo(f"last lines of {log_path}:", err=True)
                        click.echo(_tail(log_path), err=True)
                    stopping, code = True, 1
                    break
            time.sleep(0.3)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if catcher is not None:
            catcher.stop()
        click.echo("stopped")
    return code


@click.command()
@click.option("--port", default=8000, show_default=True, help="Web port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--verbose", "-v", is_flag=True, help="Show the services' logs here instead of in files."
)
@handled
def up(port: int, host: str, verbose: bool) -> None:
    """Run web, worker, beat and the SMTP catcher together (the embedded default)."""
    from newsletter.commands.up import run_all

    sys.exit(run_all(settings(), host=host, port=port, verbose=verbose))
