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

import click
from sqlalchemy import select

from newsletter.commands.common import ServiceError, handled, settings
from newsletter.config import Settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _ensure_list(settings: Settings) -> str | None:
    """A fresh install gets one list, so the form works at once."""
    from newsletter.db import session_scope
    from newsletter.models import MailingList
    from newsletter.subscriptions.lists import create_list

    with session_scope() as session:
        if session.scalar(select(MailingList.id).limit(1)) is None:
            create_list(session, "news", "The Newsroom Daily", "0 7 * * *", "UTC")
            return "news"
    return None


def run_all(settings: Settings, host: str, port: int) -> int:
    from newsletter.mail.catcher import start_catcher
    from newsletter.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade()
    created = _ensure_list(settings)
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
    procs = {
        "web": subprocess.Popen([*cmd, "web", "--host", host, "--port", str(port)], env=env),
        "worker": subprocess.Popen([*cmd, "worker", "--loglevel", "WARNING"], env=env),
        "beat": subprocess.Popen([*cmd, "beat", "--loglevel", "WARNING"], env=env),
    }
    click.echo(f"newsletter is up ({'embedded' if settings.embedded else 'external'} services)")
    click.echo(f"  subscribe form  {base}/subscribe")
    if catcher is not None:
        click.echo(f"  outbox          {base}/outbox   (SMTP catcher on port {settings.smtp.port})")
    click.echo(f"  health          {base}/healthz")
    click.echo(
        f"  admin API       {base}/api/docs   (token in {settings.data_dir / 'admin_token'})"
    )
    click.echo(f"  data            {settings.data_dir.resolve()}")
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
@handled
def up(port: int, host: str) -> None:
    """Run web, worker, beat and the SMTP catcher together (the embedded default)."""
    from newsletter.commands.up import run_all

    sys.exit(run_all(settings(), host=host, port=port))
