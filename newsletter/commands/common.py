"""What every command shares: exit codes, error translation, JSON output.

Bad input exits 2 with one line on stderr; a failure of the service exits 1.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
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


def settings() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        raise InputError(f"configuration error: {exc}") from None


def handled(func: F) -> F:
    """Turn domain errors into the CLI's promises: exit 2 for input, 1 for the service."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings()
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
