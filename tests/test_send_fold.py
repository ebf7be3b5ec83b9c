"""The fold writes accepts as id ranges: every row of a batch with mixed outcomes ends
with exactly its own status, on SQLite and PostgreSQL.

Real parts: the database of the `database` fixture and the aiosmtpd server of
tests/services.py; one batch run in this process (batch.run_batch) over all the rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Delivery, Digest, Subscriber, Subscription
from newsletter.sending.batch import Ledger, run_batch
from newsletter.sending.job import start_send
from tests.send_support import populate, send_env
from tests.services import SmtpRules, SmtpServer

# One domain each: a 451 backs off only its own domain, not the readers after it.
EMAILS = [f"reader{i}@d{i}.example.org" for i in range(14)]
DEFERRED = {EMAILS[3], EMAILS[9]}
BOUNCED = {EMAILS[5], EMAILS[6]}
LEFT = {EMAILS[7]}  # unsubscribed after the ledger was written: failed, not sent


def test_sent_ranges_break_at_every_row_of_the_batch_not_accepted() -> None:
    order = {i: place for place, i in enumerate([10, 11, 12, 14, 15, 16, 20, 21])}
    ledger = Ledger(sent=[21, 10, 11, 15, 16, 20, 99], order=order)
    # 12 and 14 are the batch's but not accepted; 13, 17-19 are not the batch's rows;
    # 99 is not placed: a range of its own.
    assert ledger.sent_ranges() == [(10, 11), (15, 21), (99, 99)]
    assert Ledger(sent=[3, 1, 2]).sent_ranges() == [(1, 1), (2, 2), (3, 3)]
    assert Ledger().sent_ranges() == []


def test_a_batch_with_mixed_outcomes_ends_with_the_right_status_per_row(
    database: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest_id = populate(EMAILS)
    server = SmtpServer(SmtpRules(reject=BOUNCED, defer=DEFERRED)).start()
    try:
        for name, value in send_env(data_dir, server.url, database, None).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("NEWSLETTER_SEND_BATCH_SIZE", "100")
        get_settings.cache_clear()
        settings = get_settings()
        with session_scope() as session:
            digest = session.get(Digest, digest_id)
            assert digest is not None
            ranges = start_send(session, settings, digest)
            left = select(Subscriber.id).where(Subscriber.email.in_(LEFT))
            session.execute(
                update(Subscription)
                .where(Subscription.subscriber_id.in_(left))
                .values(status="unsubscribed")
            )
        assert len(ranges) == 1
        result = run_batch(settings, digest_id, *ranges[0])
        assert (result.sent, result.deferred, result.bounced, result.failed) == (9, 2, 2, 1)

        with session_scope() as session:
            rows = session.execute(
                select(
                    Subscriber.email,
                    Delivery.status,
                    Delivery.smtp_code,
                    Delivery.message_id,
                    Delivery.claim,
                    Delivery.attempts,
                    Delivery.next_attempt_at,
                )
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.digest_id == digest_id)
                .order_by(Delivery.id)
            ).all()
        assert len(rows) == len(EMAILS)
        for email, status, code, message_id, claim, attempts, next_at in rows:
            assert claim is None, email
            assert attempts == 1, email
            if email in DEFERRED:
                assert (status, code) == ("deferred", 451), email
                assert next_at is not None and message_id is None
            elif email in BOUNCED:
                assert (status, code) == ("bounced", 550), email
                assert message_id is None
            elif email in LEFT:
                assert status == "failed" and message_id is None, email
            else:
                assert (status, code, next_at) == ("sent", 250, None), email
                assert message_id is not None and message_id.startswith("<"), email
        received = sorted(r for m in server.messages for r in m.rcpt_tos)
        assert received == sorted(set(EMAILS) - DEFERRED - BOUNCED - LEFT)
        # Each reader's message is made while the reply before it travels: the one made
        # for a reader refused at RCPT is dropped, and every message that went out is
        # the one of the reader it went to.
        for m in server.messages:
            (to,) = m.rcpt_tos
            assert m.message["To"].addresses[0].addr_spec == to
            greeting = f"Hello Reader {EMAILS.index(to)},"
            assert greeting in m.message.get_body(("plain",)).get_content(), to
    finally:
        server.stop()


def test_a_batch_whose_range_spans_another_send_claims_and_sends_only_its_own_rows(
    database: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim finds a range's rows by id alone (the primary key) and tests the digest
    apart: ids of two sends written at once may share a range."""
    first = [f"first{i}@example.org" for i in range(4)]
    second = [f"second{i}@example.org" for i in range(4)]
    first_id = populate(first, slug="first")
    second_id = populate(second, slug="second")
    server = SmtpServer().start()
    try:
        for name, value in send_env(data_dir, server.url, database, None).items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        settings = get_settings()
        with session_scope() as session:
            for digest_id in (first_id, second_id):
                digest = session.get(Digest, digest_id)
                assert digest is not None
                start_send(session, settings, digest)
        with session_scope() as session:
            ids = session.scalars(select(Delivery.id)).all()
        result = run_batch(settings, second_id, min(ids), max(ids))
        assert result.sent == len(second)

        received = sorted(r for m in server.messages for r in m.rcpt_tos)
        assert received == sorted(second)
        with session_scope() as session:
            rows = session.execute(
                select(Delivery.digest_id, Delivery.status, Delivery.claim, Delivery.attempts)
            ).all()
        assert sorted(r.status for r in rows if r.digest_id == second_id) == ["sent"] * 4
        untouched = [(r.status, r.claim, r.attempts) for r in rows if r.digest_id == first_id]
        assert untouched == [("queued", None, 0)] * 4
    finally:
        server.stop()
