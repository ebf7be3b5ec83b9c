"""What every command shares: exit codes, error translation, JSON output.

Bad input exits 2 with one line on stderr; a failure of the service exits 1.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from newsletter.config import ConfigError, Settings, get_settings
from newsletter.effects import Done
from newsletter.errors import InvalidInput, Unavailable
from workers import gateway
from workers.gateway import BrokerUnavailable

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class InputError(click.ClickException):
    exit_code = 2


class ServiceError(click.ClickException):
    exit_code = 1


# Commands that create the data dir and the database on purpose; every other one needs
# them to exist already and says where it looked instead of making an empty ./var.
CREATES_DATA = frozenset({"up", "db upgrade", "web", "worker", "beat", "catcher", "bounce-server"})


def settings() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        raise InputError(f"configuration error: {exc}") from None


def use_data_dir(path: Path) -> None:
    """`newsletter --data-dir DIR`: the same as NEWSLETTER_DATA_DIR, for this command and
    the processes it starts."""
    os.environ["NEWSLETTER_DATA_DIR"] = str(path.expanduser().resolve())
    get_settings.cache_clear()


def _command_path() -> str:
    """e.g. "db upgrade" for `newsletter db upgrade`."""
    names: list[str] = []
    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.command.name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def require_data(s: Settings) -> None:
    """Stop, creating nothing, when the SQLite database this command needs is not there."""
    path = s.missing_database()
    if path is None or _command_path() in CREATES_DATA:
        return
    if s.database_url is not None:
        hint = "check NEWSLETTER_DATABASE_URL"
    else:
        hint = (
            "run the command where the data is, or point at it with "
            "`newsletter --data-dir DIR ...` or NEWSLETTER_DATA_DIR=DIR"
        )
    message = (
        f"no database at {path}: {hint} (`newsletter up` or `newsletter db upgrade` creates one)"
    )
    if s.data_dir_given:
        # The operator named the place and the data is not there: the service is missing.
        raise ServiceError(message)
    raise InputError(message)


def handled(func: F) -> F:
    """Turn domain errors into the CLI's promises: exit 2 for input, 1 for the service."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_data(settings())
        try:
            return func(*args, **kwargs)
        except InvalidInput as exc:
            raise InputError(exc.message) from None
        except ConfigError as exc:
            raise InputError(f"configuration error: {exc}") from None
        except (Unavailable, BrokerUnavailable) as exc:
            raise ServiceError(str(exc)) from None
        except OperationalError as exc:
            raise ServiceError(f"database unreachable: {exc.orig}") from None
        except SQLAlchemyError as exc:
            raise ServiceError(f"database error: {exc.__class__.__name__}") from None

    return wrapper  # type: ignore[return-value]


def perform(action: Callable[..., Done[T]], *args: Any, **kwargs: Any) -> T:
    """Run a domain action through the gateway (one transaction, then its effects)."""
    settings()
    return gateway.perform(action, *args, **kwargs)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))
