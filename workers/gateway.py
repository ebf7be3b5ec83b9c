"""The one enqueue gateway: every effect an action returns reaches Celery through here.

`perform` is how a route or a command runs an action: one transaction around the domain
function, then its effects queued after the commit. A broker that cannot take them is
`BrokerUnavailable`, one line for the operator (the committed work stays: recovery and
the operator's retry pick it up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.effects import (
    DeliverWebhooks,
    Done,
    Effect,
    SendBatches,
    SendConfirmation,
    SendPreferencesLink,
    SendWelcome,
)

P = ParamSpec("P")
T = TypeVar("T")


class BrokerUnavailable(Exception):
    """The queue refused the work; the message is one line for the operator."""


def dispatch(effects: Iterable[Effect]) -> None:
    effects = list(effects)
    if not effects:
        return  # a reading command need not load Celery and the broker's client (~0.3 s)
    from workers.tasks import (
        deliver_webhooks,
        enqueue_ranges,
        send_confirmation,
        send_preferences_link,
        send_welcome,
    )

    try:
        for effect in effects:
            if isinstance(effect, SendConfirmation):
                send_confirmation.delay(effect.subscription_id)
            elif isinstance(effect, SendBatches):
                enqueue_ranges(effect.digest_id, list(effect.ranges))
            elif isinstance(effect, SendWelcome):
                send_welcome.delay(effect.subscription_id)
            elif isinstance(effect, SendPreferencesLink):
                send_preferences_link.delay(effect.subscriber_id, effect.language)
            elif isinstance(effect, DeliverWebhooks):
                deliver_webhooks.delay()
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; one line for the operator
        raise BrokerUnavailable(f"broker unreachable: {exc.__class__.__name__}: {exc}") from None


def perform(
    action: Callable[Concatenate[Session, Settings, P], Done[T]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run one action in its own transaction, then queue what it asked for."""
    settings = get_settings()
    with session_scope() as session:
        done = action(session, settings, *args, **kwargs)
    dispatch(done.effects)
    return done.value
