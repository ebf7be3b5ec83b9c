"""What an operator action asks of the queue once its transaction has committed.

The domain decides, the adapter acts: an action returns `Done(value, effects)` and never
enqueues anything itself; workers/gateway.py is the one place that turns effects into
Celery tasks, after the commit, so a task never runs against rows it cannot see yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
Range = tuple[int, int]


@dataclass(frozen=True)
class SendConfirmation:
    """Mail the double opt-in link of a pending subscription."""

    subscription_id: int


@dataclass(frozen=True)
class SendBatches:
    """Run these delivery-id ranges of a send (and write the rest of its ledger when the
    digest says it is incomplete)."""

    digest_id: int
    ranges: tuple[Range, ...] = ()


@dataclass(frozen=True)
class SendWelcome:
    """Mail a list's welcome to a reader who just confirmed (when the list has it on)."""

    subscription_id: int


@dataclass(frozen=True)
class SendPreferencesLink:
    """Mail a reader the link to their preference centre (asked for by address)."""

    subscriber_id: int
    language: str | None = None


@dataclass(frozen=True)
class DeliverWebhooks:
    """Post the webhook events the transaction wrote (newsletter/webhooks/): a nudge only,
    beat's sweep delivers them too when the nudge is lost."""


Effect = SendConfirmation | SendBatches | SendWelcome | SendPreferencesLink | DeliverWebhooks


@dataclass(frozen=True)
class Done(Generic[T]):
    """An action's answer for the face that called it, and what to queue after commit."""

    value: T
    effects: tuple[Effect, ...] = field(default=())
