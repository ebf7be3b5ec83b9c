"""How an admin API route runs an action: parse, call through the gateway, present.

Domain errors become HTTP answers in one place: NotFound 404, Conflict 409, Forbidden
403, other bad
input 422 (or the router's choice), a service that did not answer 503. The body is
`{"detail": [{"field": ..., "message": ...}]}` for input errors, like FastAPI's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import HTTPException, Path

from newsletter.effects import Done
from newsletter.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from workers.gateway import BrokerUnavailable, perform

T = TypeVar("T")
# Ids are PostgreSQL `integer` columns: the documented range is what the database takes,
# so an id past it is a 422 (or a 404 page) instead of an overflow in the driver.
MAX_ID = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A positive id")]


def call(
    action: Callable[..., Done[T]],
    *args: Any,
    invalid: int = 422,
    plain: bool = False,
    **kwargs: Any,
) -> T:
    """`plain` answers with the message alone as the detail (routes that always did)."""
    try:
        return perform(action, *args, **kwargs)
    except InvalidInput as exc:
        error = http_error(exc, invalid)
        if plain:
            error.detail = exc.message
        raise error from None
    except (Unavailable, BrokerUnavailable) as exc:
        raise HTTPException(503, str(exc)) from None


def http_error(exc: InvalidInput, invalid: int = 422) -> HTTPException:
    status = (
        404
        if isinstance(exc, NotFound)
        else 409
        if isinstance(exc, Conflict)
        else 403
        if isinstance(exc, Forbidden)
        else invalid
    )
    return HTTPException(status, [{"field": exc.field, "message": exc.message}])
