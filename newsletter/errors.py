"""Errors every face translates the same way: bad input (HTTP 4xx, CLI exit 2)."""

from __future__ import annotations


class InvalidInput(ValueError):
    """User input that cannot be accepted; `field` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotFound(InvalidInput):
    """The input names something that does not exist (HTTP 404 where an API answers)."""


class Conflict(InvalidInput):
    """The input is well formed but the state forbids it now (HTTP 409): a send that is not
    running cannot pause, a list with no new stories has no digest."""


class Unavailable(Exception):
    """A service the action needs (SMTP server, mailbox) did not answer: CLI exit 1,
    HTTP 503. The message is one line for the operator."""


class Forbidden(InvalidInput):
    """The person asking may not do this (their role, or approving their own send):
    HTTP 403, CLI exit 2."""
