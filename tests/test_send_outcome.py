"""What the ledger records for one SMTP attempt: batch.outcome and its siblings, without
SMTP or a database (they are pure), plus the Claim marks and the transport's Pipeline
priming (against a recording stand-in of the transport)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.models import DeliveryStatus
from newsletter.sending.batch import (
    Change,
    Claim,
    Ledger,
    Row,
    held_back,
    not_eligible,
    outcome,
    released,
)
from newsletter.sending.transport import SENT, Attempt, Envelope, Pipeline

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        NEWSLETTER_FROM="The Newsroom <news@example.com>",
        secret_key="s" * 32,
        base_url="https://news.example.com",
        bounce_domain="bounces.example.com",
        data_dir=tmp_path,
        send_max_attempts=3,
        send_retry_base_seconds=60,
    )


def row(attempts: int = 1, *, taken_over: bool = False, email: str | None = "a@x.org") -> Row:
    return Row(
        id=7,
        taken_over=taken_over,
        attempts=attempts,
        email=email,
        name="A",
        subscription_id=3 if email else None,
        eligible=email is not None,
    )


def test_an_accept_is_sent(settings: Settings) -> None:
    assert outcome(SENT, row(), settings, NOW) == Change(7, DeliveryStatus.sent, 250)


def test_a_5xx_to_rcpt_bounces_and_goes_through_the_bounce_policy(settings: Settings) -> None:
    change = outcome(Attempt("bounced", 550, "5.1.1 unknown"), row(), settings, NOW)
    assert change == Change(7, DeliveryStatus.bounced, 550, "5.1.1 unknown", bounce=True)


def test_a_temporary_refusal_is_deferred_with_exponential_backoff(settings: Settings) -> None:
    first = outcome(Attempt("deferred", 451, "greylisted"), row(1), settings, NOW)
    second = outcome(Attempt("deferred", 451, "greylisted"), row(2), settings, NOW)
    assert first.status == DeliveryStatus.deferred and first.reply == "greylisted"
    assert first.next_attempt_at == NOW + timedelta(seconds=60)
    assert second.next_attempt_at == NOW + timedelta(seconds=120)
    assert first.attempts_delta == 0 and not first.bounce


def test_the_last_attempt_gives_up(settings: Settings) -> None:
    change = outcome(Attempt("deferred", None, "connection lost"), row(3), settings, NOW)
    assert change.status == DeliveryStatus.failed and change.next_attempt_at is None
    assert change.reply == "gave up after 3 attempts: connection lost"


def test_a_permanent_failure_fails(settings: Settings) -> None:
    change = outcome(Attempt("failed", 554, "content rejected"), row(), settings, NOW)
    assert change == Change(7, DeliveryStatus.failed, 554, "content rejected")


def test_rows_not_tried_give_back_the_attempt_their_claim_counted() -> None:
    until = NOW + timedelta(minutes=5)
    held = held_back(row(), "x.org", until)
    assert held.status == DeliveryStatus.deferred and held.next_attempt_at == until
    assert held.attempts_delta == -1 and "x.org answered 4xx" in (held.reply or "")
    # A taken-over row's attempt was counted by the dead worker's claim, not this one.
    assert held_back(row(taken_over=True), "x.org", until).attempts_delta == 0
    assert released(row(), cancelled=False) == Change(7, DeliveryStatus.queued, attempts_delta=-1)
    assert released(row(taken_over=True), cancelled=False).attempts_delta == 0
    cancelled = released(row(), cancelled=True)
    assert cancelled.status == DeliveryStatus.failed and cancelled.attempts_delta == 0
    assert cancelled.reply == "cancelled by the operator"


def test_a_reader_who_left_is_not_sent() -> None:
    assert not_eligible(row(email=None)).reply == "not sent: subscriber erased before sending"
    gone = not_eligible(row())
    assert gone.status == DeliveryStatus.failed
    assert gone.reply == "not sent: unsubscribed or suppressed before sending"


def test_the_ledger_keeps_sent_ids_apart() -> None:
    ledger = Ledger()
    assert not ledger
    ledger.add(Change(1, DeliveryStatus.sent, 250))
    ledger.add(Change(2, DeliveryStatus.bounced, 550, "no", bounce=True))
    assert ledger and ledger.sent == [1] and [c.delivery_id for c in ledger.other] == [2]


def test_a_claim_marks_fresh_and_taken_over_rows_apart() -> None:
    claim = Claim("abc")
    assert claim.fresh == "abc" and claim.taken_over == "abcr"
    assert claim.marks == ("abc", "abcr")
    assert Claim.new() != Claim.new()
    assert len(Claim.new().fresh) == 16


class Recorder:
    """A stand-in for PooledTransport that records what the pipeline asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str, str, tuple[str, str] | None]] = []
        self.abandoned = 0

    def deliver(
        self, wire: bytes, mail_from: str, rcpt: str, then: tuple[str, str] | None = None
    ) -> Attempt:
        self.calls.append((wire, mail_from, rcpt, then))
        return SENT

    def abandon(self) -> None:
        self.abandoned += 1


def test_the_pipeline_primes_the_next_envelope_and_makes_each_sender_once() -> None:
    made: list[str] = []

    def envelope(rcpt: str) -> Envelope:
        made.append(rcpt)
        return Envelope(f"bounce+{rcpt}", rcpt)

    items = ["a@x.org", "b@blocked.org", "c@x.org", "d@x.org"]
    transport = Recorder()
    pipeline: Pipeline[str] = Pipeline(
        transport,
        items,
        envelope,
        lambda rcpt: not rcpt.endswith("@blocked.org"),
    )
    for index in (0, 2, 3):  # b is held back by the batch: never sent, never primed
        pipeline.send(index, b"content\r\n.\r\n")
    pipeline.close()
    assert [c[2] for c in transport.calls] == ["a@x.org", "c@x.org", "d@x.org"]
    assert [c[3] for c in transport.calls] == [None, ("bounce+d@x.org", "d@x.org"), None]
    assert transport.calls[1][1] == "bounce+c@x.org"
    # a, c and d made once each (d was primed with c and reused); b never.
    assert made == ["a@x.org", "c@x.org", "d@x.org"]
    assert transport.abandoned == 1
