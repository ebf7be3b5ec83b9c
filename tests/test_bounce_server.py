"""`newsletter bounce-server` over real SMTP: the corpus of real-world and hand-written
bounces, each to its delivery's VERP address, ends with the expected effect on the reader;
forged, unknown, oversized and non-bounce mail is refused with the right SMTP code."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from newsletter.bounces.report import bounce_report
from newsletter.bounces.server import start_bounce_server
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.models import BounceEvent
from tests.bounce_support import (
    BOUNCE_DOMAIN,
    STATUS_AFTER,
    bounce_settings_fixture,  # noqa: F401 - the bounce_settings fixture
    corpus,
    events_for,
    send_digest,
    subscriber_state,
)
from tests.services import free_port

POSTFIX = corpus()[0][1]  # any real bounce will do for the refusal tests


@pytest.fixture
def server(bounce_settings: Settings) -> Iterator[tuple[str, int]]:
    port = free_port()
    controller = start_bounce_server(
        bounce_settings.model_copy(update={"bounce_max_bytes": 200_000}), "127.0.0.1", port
    )
    yield "127.0.0.1", port
    controller.stop()


def _send(server: tuple[str, int], rcpt: str, raw: bytes) -> tuple[int, bytes]:
    """MAIL FROM:<> (as MTAs send DSNs), RCPT, DATA; the first refusal's code and text."""
    with smtplib.SMTP(*server, timeout=30) as smtp:
        smtp.ehlo("mx.example.net")
        code, reply = smtp.mail("")
        assert code == 250
        code, reply = smtp.rcpt(rcpt)
        if code != 250:
            return code, reply
        return smtp.data(crlf(raw))


def crlf(raw: bytes) -> bytes:
    """On the wire a message has CRLF line ends (the fixtures are stored with LF)."""
    return re.sub(rb"\r?\n", b"\r\n", raw)


def _rejected(reason: str) -> int:
    with session_scope() as session:
        rows = bounce_report(session)["rejected"]
    return sum(r["count"] for r in rows if r["source"] == "smtp" and r["reason"] == reason)


def _event_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(BounceEvent)) or 0


def test_every_corpus_message_has_its_expected_effect(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    items = corpus()
    assert len(items) >= 90
    sends = send_digest([f"reader{i}@example.org" for i in range(len(items))])
    wrong = []
    for (name, raw, kind), sent in zip(items, sends, strict=True):
        code, reply = _send(server, sent.verp(bounce_settings), raw)
        status = subscriber_state(sent.email)[0]
        kinds = {k for k, _ in events_for(sent.delivery_id)}
        if code != 250 or kinds != {kind} or status != STATUS_AFTER[kind]:
            wrong.append(f"{name}: {code} {reply!r} events {kinds} status {status}")
    assert wrong == [], "\n".join(wrong)


def test_the_same_dsn_delivered_twice_is_recorded_once(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    (sent,) = send_digest(["ana@example.org"])
    raw = next(raw for name, raw, kind in corpus() if kind == "soft")
    assert _send(server, sent.verp(bounce_settings), raw)[0] == 250
    assert _send(server, sent.verp(bounce_settings), raw)[0] == 250
    assert len(events_for(sent.delivery_id)) == 1
    assert subscriber_state("ana@example.org")[:2] == ("active", 1)


@pytest.mark.parametrize(
    ("rcpt", "reason"),
    [
        (f"bounces+1-000000000000@{BOUNCE_DOMAIN}", "forged-token"),
        (f"bounces+1@{BOUNCE_DOMAIN}", "forged-token"),
        (f"postmaster@{BOUNCE_DOMAIN}", "unknown-address"),
        ("bounces+1-000000000000@elsewhere.example", "unknown-address"),
    ],
)
def test_forged_or_unknown_addresses_are_refused_at_rcpt(
    server: tuple[str, int], rcpt: str, reason: str
) -> None:
    (sent,) = send_digest(["ana@example.org"])
    code, reply = _send(server, rcpt, POSTFIX)
    assert code == 550 and b"5.1.1" in reply
    assert _rejected(reason) == 1
    assert _event_count() == 0
    assert subscriber_state("ana@example.org")[0] == "active"


def test_a_token_signed_with_another_key_is_refused(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    (sent,) = send_digest(["ana@example.org"])
    other = bounce_settings.model_copy(update={"secret_key": "someone-else"})
    assert _send(server, sent.verp(other), POSTFIX)[0] == 550
    assert subscriber_state("ana@example.org")[0] == "active"


def test_an_oversized_message_is_refused_with_552(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    (sent,) = send_digest(["ana@example.org"])
    huge = POSTFIX + b"\r\n" + (b"x" * 998 + b"\r\n") * 300
    code, _ = _send(server, sent.verp(bounce_settings), huge)
    assert code == 552
    assert _event_count() == 0


def test_mail_that_is_not_a_bounce_is_refused_and_counted(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    (sent,) = send_digest(["ana@example.org"])
    raw = b"From: someone@example.net\r\nSubject: hello\r\n\r\nJust saying hi.\r\n"
    code, reply = _send(server, sent.verp(bounce_settings), raw)
    assert code == 550 and b"5.6.0" in reply
    assert _rejected("not-a-bounce") == 1
    assert _event_count() == 0


def test_a_database_failure_answers_451_and_the_server_keeps_running(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    (sent,) = send_digest(["ana@example.org"])
    with session_scope() as session:
        session.execute(text("ALTER TABLE bounce_events RENAME TO bounce_events_away"))
    code, reply = _send(server, sent.verp(bounce_settings), POSTFIX)
    assert code == 451 and b"4.3.0" in reply
    with session_scope() as session:
        session.execute(text("ALTER TABLE bounce_events_away RENAME TO bounce_events"))
    assert subscriber_state("ana@example.org")[0] == "active"  # nothing half-written
    assert _send(server, sent.verp(bounce_settings), POSTFIX)[0] == 250
    assert events_for(sent.delivery_id) != []
