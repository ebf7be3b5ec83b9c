"""`newsletter web|worker|beat|catcher`: each service alone, as production runs it."""

from __future__ import annotations

import click

from newsletter.commands.common import handled, settings
from newsletter.errors import InvalidInput

# The levels `celery worker --loglevel` takes (celery.bin.base.LogLevel, not imported:
# that module loads pygments into the worker and every process forked from it).
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", "processes", default=1, show_default=True, help="Web processes.")
@handled
def web(host: str, port: int, processes: int) -> None:
    """Serve the web app and the admin API."""
    import uvicorn

    s = settings()
    if processes < 1:
        raise InvalidInput("workers", "--workers must be at least 1.")
    if processes > 1 and s.redis_url is None:
        # Without Redis each process would keep its own sign-up and login rate limits.
        raise InvalidInput(
            "workers",
            "--workers above 1 needs Redis as the broker (NEWSLETTER_BROKER_URL=redis://...):"
            " the rate limits are shared through it.",
        )
    uvicorn.run(
        "newsletter.web.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=processes,
        log_level="warning",
        access_log=False,
    )


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Processes (default: cores).",
)
@click.option("--pool", type=click.Choice(["prefork", "threads", "solo"]), default="prefork")
@click.option("--loglevel", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="INFO")
@click.option("--hostname", "-n", default=None, help="Node name, e.g. worker1@%h.")
@handled
def worker(concurrency: int | None, pool: str, loglevel: str, hostname: str | None) -> None:
    """Run a Celery worker."""
    settings()
    from celery.utils.nodenames import default_nodename, host_format

    from workers.app import app

    # The worker is built here, as `celery worker` would build it, not through Celery's
    # own command line: that one loads an interactive shell's libraries (prompt_toolkit,
    # pygments) into the worker and every pool process forked from it.
    node = app.Worker(
        hostname=host_format(default_nodename(hostname)),
        pool_cls=pool,
        loglevel=loglevel,
        concurrency=concurrency,
        without_mingle=True,
        without_gossip=True,
    )
    node.start()
    raise SystemExit(node.exitcode)


@click.command()
@click.option("--loglevel", default="INFO")
@handled
def beat(loglevel: str) -> None:
    """Run the Celery beat scheduler (one per deployment)."""
    settings()
    from workers.app import app

    app.start(["beat", f"--loglevel={loglevel}"])


@click.command()
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
