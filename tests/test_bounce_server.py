"""`newsletter bounce-server` over real SMTP: the corpus of real-world and hand-written
bounces, each to its delivery's VERP address, ends with the expected effect on the reader;
forged, unknown, oversized and non-bounce mail is refused with the right SMTP code."""

from __future__ import annotations

import json
import re
import smtplib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select, text

from newsletter import db
from newsletter.bounces import handling, ingest
from newsletter.bounces.inbound import handle_message
from newsletter.bounces.ingest import Arrived
from newsletter.bounces.parse import analyse
from newsletter.bounces.report import bounce_report
from newsletter.bounces.server import start_bounce_server
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.mail.verp import verp_address
from newsletter.models import BounceEvent, Delivery, Subscriber, Suppression, WebhookDelivery
from newsletter.subscriptions.addresses import email_hash
from newsletter.webhooks import actions as webhook_actions
from tests.bounce_support import (
    BOUNCE_DOMAIN,
    STATUS_AFTER,
    Sent,
    bounce_settings_fixture,  # noqa: F401 - the bounce_settings fixture
    corpus,
    events_for,
    is_suppressed,
    send_digest,
    subscriber_state,
)
from tests.services import free_port

POSTFIX = corpus()[0][1]  # any real bounce will do for the refusal tests
CONTROLLERS: list[Any] = []  # the running server, for its writer's group count


@pytest.fixture
def server(bounce_settings: Settings) -> Iterator[tuple[str, int]]:
    port = free_port()
    controller = start_bounce_server(
        bounce_settings.model_copy(update={"bounce_max_bytes": 200_000}), "127.0.0.1", port
    )
    CONTROLLERS.append(controller)
    yield "127.0.0.1", port
    CONTROLLERS.remove(controller)
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


# --- Group commit: many sessions' DSNs in one transaction, each stored before its 250 ---

KIND_RAW = {kind: raw for _, raw, kind in reversed(corpus())}  # one message per kind


def _hold_writes() -> Iterator[None]:
    """Hold the database's write lock, so the server's writer queues every message that
    arrives meanwhile into the next group."""
    engine = db.get_engine()
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
            conn.execute(text("LOCK TABLE bounce_events IN EXCLUSIVE MODE"))
        yield
        conn.rollback()


hold_writes = contextmanager(_hold_writes)


def _send_all(server: tuple[str, int], mails: list[tuple[str, bytes]]) -> list[int]:
    """Each mail over a connection of its own, all at once; the DATA reply codes."""
    with ThreadPoolExecutor(len(mails)) as pool:
        return [code for code, _ in pool.map(lambda mail: _send(server, mail[0], mail[1]), mails)]


def _send_held(server: tuple[str, int], mails: list[tuple[str, bytes]]) -> list[int]:
    """Send ``mails`` at once while the writes are held, then let the writer go: they queue
    up behind the first and are written together. Nobody may be told 250 meanwhile."""
    with ThreadPoolExecutor(1) as pool:
        with hold_writes():
            codes = pool.submit(_send_all, server, mails)
            time.sleep(1.5)  # every session is in DATA, waiting for the writer
            assert not codes.done()
        return codes.result()


def _groups() -> int:
    return sum(c.writer.groups for c in CONTROLLERS)


def test_dsns_from_concurrent_sessions_are_each_stored_before_their_250(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    sends = send_digest([f"reader{i}@example.org" for i in range(12)])
    seen_at_250: list[int] = []

    def one(sent: Sent) -> int:
        code, _ = _send(server, sent.verp(bounce_settings), KIND_RAW["hard"])
        seen_at_250.append(len(events_for(sent.delivery_id)))  # read at once, a new session
        return code

    with ThreadPoolExecutor(len(sends)) as pool:
        codes = list(pool.map(one, sends))
    assert codes == [250] * len(sends)
    assert seen_at_250 == [1] * len(sends)
    assert all(subscriber_state(s.email)[0] == "bounced" for s in sends)


def test_messages_that_queue_up_are_written_in_one_group(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    sends = send_digest([f"reader{i}@example.org" for i in range(10)])
    before = _groups()
    codes = _send_held(server, [(s.verp(bounce_settings), KIND_RAW["soft"]) for s in sends])
    assert codes == [250] * len(sends)
    assert _groups() - before <= 3  # the first one blocked, the others behind it together
    assert [subscriber_state(s.email)[:2] for s in sends] == [("active", 1)] * len(sends)


def test_a_dsn_twice_in_one_group_and_again_later_is_recorded_once(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    ana, ben = send_digest(["ana@example.org", "ben@example.org"])
    twice = [(ana.verp(bounce_settings), KIND_RAW["soft"])] * 3
    codes = _send_held(server, [*twice, (ben.verp(bounce_settings), KIND_RAW["soft"])])
    assert codes == [250] * 4
    assert _send(server, ana.verp(bounce_settings), KIND_RAW["soft"])[0] == 250
    assert len(events_for(ana.delivery_id)) == 1
    assert subscriber_state("ana@example.org")[:2] == ("active", 1)


def test_soft_bounces_for_one_reader_in_one_group_count_as_one_at_a_time(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    # Three digests, each soft-bounced: the third reaches the limit (3) and suppresses.
    sends = [send_digest(["ana@example.org"], subject=f"D{i}")[0] for i in range(3)]
    codes = _send_held(server, [(s.verp(bounce_settings), KIND_RAW["soft"]) for s in sends])
    assert codes == [250] * 3
    assert subscriber_state("ana@example.org")[:2] == ("bounced", 3)
    assert is_suppressed("ana@example.org")


def test_a_database_outage_answers_451_to_every_session_and_stores_nothing(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    sends = send_digest([f"reader{i}@example.org" for i in range(6)])
    with session_scope() as session:
        session.execute(text("ALTER TABLE bounce_events RENAME TO bounce_events_away"))
    codes = _send_all(server, [(s.verp(bounce_settings), KIND_RAW["hard"]) for s in sends])
    with session_scope() as session:
        session.execute(text("ALTER TABLE bounce_events_away RENAME TO bounce_events"))
    assert codes == [451] * len(sends)
    assert _event_count() == 0
    assert all(subscriber_state(s.email)[0] == "active" for s in sends)
    assert not any(is_suppressed(s.email) for s in sends)
    # The senders retry: now everything is stored.
    codes = _send_all(server, [(s.verp(bounce_settings), KIND_RAW["hard"]) for s in sends])
    assert codes == [250] * len(sends)
    assert all(subscriber_state(s.email)[0] == "bounced" for s in sends)


def test_one_message_that_cannot_be_stored_fails_alone(
    server: tuple[str, int], bounce_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sends = send_digest([f"reader{i}@example.org" for i in range(5)])
    poisoned = sends[2]
    real = handling.fingerprint  # both ways of storing identify each bounce with it

    def fingerprint(result: Any, delivery_id: int | None, *args: Any) -> str:
        if delivery_id == poisoned.delivery_id:
            raise RuntimeError("a bug that only this message meets")
        return real(result, delivery_id, *args)

    monkeypatch.setattr(handling, "fingerprint", fingerprint)
    monkeypatch.setattr(ingest, "fingerprint", fingerprint)
    mails = [(s.verp(bounce_settings), KIND_RAW["soft"]) for s in sends]
    mails.append((poisoned.verp(bounce_settings), KIND_RAW["hard"]))
    codes = _send_held(server, mails)
    assert codes == [250, 250, 451, 250, 250, 451]
    assert [len(events_for(s.delivery_id)) for s in sends] == [1, 1, 0, 1, 1]


# --- record_group: a group gives exactly what one message at a time gives ---


def _scenario(settings: Settings, domain: str) -> list[tuple[str, bytes]]:
    """(VERP address, message) for readers r0..r8 at ``domain``, and a state before it."""
    emails = [f"r{i}@{domain}" for i in range(9)]
    digests = [send_digest(emails, subject=f"D{d}") for d in range(4)]

    def verp(reader: int, digest: int) -> str:
        return digests[digest][reader].verp(settings)

    hard, soft, complaint = KIND_RAW["hard"], KIND_RAW["soft"], KIND_RAW["complaint"]
    # Before the group: r6 has its hard bounce stored, r8 two soft bounces in a row.
    with session_scope() as session:
        for address, raw in [(verp(6, 0), hard), (verp(8, 1), soft), (verp(8, 2), soft)]:
            handle_message(session, settings, raw, source="smtp", rcpt_to=[address])
    return [
        (verp(0, 0), hard),
        (verp(1, 0), soft),
        (verp(1, 1), soft),
        (verp(1, 2), soft),  # the third in a row: the limit
        (verp(2, 1), soft),
        (verp(2, 1), soft),  # the same DSN twice
        (verp(3, 0), complaint),
        (verp(4, 0), KIND_RAW["policy"]),
        (verp(4, 1), KIND_RAW["ignore"]),
        (verp(5, 3), soft),
        (verp(5, 2), hard),
        (verp(6, 0), hard),  # stored before
        (verp(7, 0), complaint),
        (verp(7, 1), hard),  # complained stays complained
        (verp(8, 3), soft),  # the third with the two before
        (verp_address(10**9, settings), hard),  # no such delivery
    ]


def _snapshot(settings: Settings, domain: str) -> list[object]:
    with session_scope() as session:
        readers = session.scalars(
            select(Subscriber).where(Subscriber.email.like(f"%@{domain}")).order_by(Subscriber.id)
        ).all()
        out: list[object] = []
        for reader in readers:
            mark = email_hash(reader.email, settings.secret)
            suppression = session.scalar(
                select(Suppression.reason).where(Suppression.email_hash == mark)
            )
            deliveries = session.scalars(
                select(Delivery).where(Delivery.subscriber_id == reader.id).order_by(Delivery.id)
            ).all()
            ids: list[int | None] = [d.id for d in deliveries]
            events = sorted(
                (e.kind, e.reason, ids.index(e.delivery_id))
                for e in session.scalars(
                    select(BounceEvent).where(BounceEvent.subscriber_id == reader.id)
                )
            )
            subs = sorted(s.status for s in reader.subscriptions)
            out.append(
                (
                    reader.email.split("@")[0],
                    reader.status,
                    reader.bounce_score,
                    suppression,
                    subs,
                    [d.status for d in deliveries],
                    events,
                )
            )
        return out


def _webhooks(domain: str) -> list[object]:
    """The bounced/complained events written for readers at ``domain``, in order."""
    with session_scope() as session:
        rows = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        out: list[object] = []
        for row in rows:
            data = json.loads(row.payload)["data"]
            if data["email"].endswith(f"@{domain}"):
                email = data.pop("email").split("@")[0]
                data.pop("digest_id")
                out.append((row.event_type, email, sorted(data.items())))
        return out


def test_a_group_has_the_effects_of_its_messages_one_at_a_time(
    bounce_settings: Settings,
) -> None:
    settings = bounce_settings
    with session_scope() as session:
        webhook_actions.add_webhook(
            session, settings, "http://127.0.0.1:9/h", ["bounced", "complained"]
        )
    alone = _scenario(settings, "alone.example")
    outcomes_alone = []
    for address, raw in alone:
        with session_scope() as session:
            outcome = handle_message(session, settings, raw, source="smtp", rcpt_to=[address])
            outcomes_alone.append((outcome.status, [h.action for h in outcome.handled]))

    grouped = _scenario(settings, "group.example")
    items = [Arrived(raw, [address], analyse(raw, [address])) for address, raw in grouped]
    with session_scope() as session:
        outcomes = ingest.record_group(session, settings, items, source="smtp")
    outcomes_group = [(o.status, [h.action for h in o.handled]) for o in outcomes]

    assert outcomes_group == outcomes_alone
    assert _snapshot(settings, "group.example") == _snapshot(settings, "alone.example")
    # The webhook events too (the same ones, though the group writes them in its order).
    assert sorted(_webhooks("group.example"), key=repr) == sorted(
        _webhooks("alone.example"), key=repr
    )
    assert _webhooks("group.example")
