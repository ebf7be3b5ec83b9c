"""Operator actions on bounces: one function each, called by the CLI and the admin API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from newsletter import audit
from newsletter.bounces.handling import unsuppress as lift
from newsletter.bounces.ingest import Parsed, ingest, parse_files
from newsletter.bounces.parse import analyse
from newsletter.bounces.poller import poll_mailbox
from newsletter.bounces.report import bounce_report
from newsletter.config import Settings
from newsletter.effects import Done
from newsletter.errors import Conflict, InvalidInput, Unavailable


def _ingested(
    session: Session, settings: Settings, parsed: list[Parsed], skipped: list[str]
) -> dict[str, Any]:
    report = ingest(session, settings, parsed)
    return {
        "messages": report.messages,
        "actions": dict(sorted(report.actions.items())),
        "skipped": skipped,
    }


@audit.audited("bounces.ingest", lambda paths: f"{len(paths)} file(s)")
def ingest_files(session: Session, settings: Settings, paths: list[Path]) -> Done[dict[str, Any]]:
    """.eml and .mbox files: every file is parsed before anything is written."""
    parsed, skipped = parse_files(paths, settings.bounce_max_bytes)
    return Done(_ingested(session, settings, parsed, skipped))


@audit.audited("bounces.ingest", lambda raw: "1 message")
def ingest_message(session: Session, settings: Settings, raw: bytes) -> Done[dict[str, Any]]:
    """One message (a DSN, an ARF complaint, an auto-reply) as the API receives it."""
    if not raw.strip():
        raise InvalidInput("message", "The body is empty; send one message (message/rfc822).")
    if len(raw) > settings.bounce_max_bytes:
        raise InvalidInput(
            "message", f"The message is larger than {settings.bounce_max_bytes} bytes."
        )
    results = analyse(raw)
    if not results:
        raise InvalidInput("message", "No bounce, complaint or auto-reply found in the message.")
    parsed = [Parsed(Path("request body"), 1, raw, results)]
    return Done(_ingested(session, settings, parsed, []))


@audit.audited("suppressions.lift", lambda email: "an address at " + email.rpartition("@")[2])
def unsuppress(session: Session, settings: Settings, email: str) -> Done[dict[str, Any]]:
    """Lift a suppression: the operator knows the address works again."""
    if not lift(session, settings, email):
        raise Conflict("email", f"{email} is not suppressed")
    return Done({"email": email, "suppressed": False})


def poll(session: Session, settings: Settings) -> Done[dict[str, int]]:
    """Read the bounce mailbox once (beat does it every minute); commits per message."""
    try:
        report = poll_mailbox(settings)
    except OSError as exc:  # includes ssl errors and socket timeouts
        raise Unavailable(f"bounce mailbox unreachable: {exc.__class__.__name__}") from None
    except Exception as exc:  # imaplib/poplib protocol errors (login refused...)
        if exc.__class__.__module__ in ("imaplib", "poplib"):
            raise Unavailable(f"bounce mailbox refused: {exc}") from None
        raise
    return Done(
        {
            "fetched": report.fetched,
            "recorded": report.recorded,
            "refused": report.refused,
            "failed": report.failed,
        }
    )


def report(
    session: Session,
    settings: Settings,
    *,
    limit: int = 50,
    kind: str | None = None,
    days: int = 30,
) -> Done[dict[str, Any]]:
    """Recent events, totals per kind, policy blocks per receiving domain, refused input."""
    return Done(bounce_report(session, limit=limit, kind=kind, days=days))
