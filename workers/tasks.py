"""Tasks: load ids, call newsletter/, record the outcome."""

from __future__ import annotations

import logging
import smtplib
import threading

from newsletter.config import get_settings
from newsletter.confirmation import confirmation_email
from newsletter.db import session_scope
from newsletter.mail.smtp import SmtpTransport
from newsletter.maintenance import purge_unconfirmed as purge
from workers.app import app

log = logging.getLogger(__name__)
_local = threading.local()


def transport() -> SmtpTransport:
    """One kept SMTP connection per worker thread (a new one if SMTP_URL changed)."""
    url = get_settings().smtp_url
    kept: tuple[str, SmtpTransport] | None = getattr(_local, "transport", None)
    if kept is None or kept[0] != url:
        if kept is not None:
            kept[1].close()
        kept = _local.transport = (url, SmtpTransport(get_settings().smtp))
    return kept[1]


class PermanentRefusal(Exception):
    pass


@app.task(
    bind=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    dont_autoretry_for=(PermanentRefusal,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=8,
)
def send_confirmation(self, subscription_id: int) -> str:  # type: ignore[no-untyped-def]
    settings = get_settings()
    with session_scope() as session:
        msg = confirmation_email(session, settings, subscription_id)
    if msg is None:
        return "not pending"
    to = msg["To"].addresses[0].addr_spec
    try:
        transport().send(msg.as_bytes(), settings.sender.addr_spec, [to])
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        if code >= 500:
            log.warning("confirmation %s refused for good: %s %s", subscription_id, code, reply)
            raise PermanentRefusal(f"{code} {reply!r}") from None
        raise
    return "sent"


@app.task
def purge_unconfirmed() -> int:
    with session_scope() as session:
        return purge(session, get_settings())
