"""The bounce policy: what happens to a reader after hard, soft, complaint, policy and
auto-reply verdicts, on SQLite and PostgreSQL, through the one handling path."""

from __future__ import annotations

from datetime import timedelta

import pytest

from newsletter.bounces.handling import record_bounce, smtp_refusal, unsuppress
from newsletter.bounces.parse import BounceResult
from newsletter.bounces.report import bounce_report
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.models import utcnow
from newsletter.subscriptions.consent import ConsentRecord, Outcome, subscribe
from tests.bounce_support import (
    bounce_settings_fixture,  # noqa: F401 - the bounce_settings fixture
    events_for,
    is_suppressed,
    send_digest,
    subscriber_state,
)

READER = "ana@example.net"


def _bounce(kind: str, reason: str, status: str = "", email: str = READER) -> BounceResult:
    return BounceResult(
        recipient=email,
        kind=kind,  # type: ignore[arg-type]
        reason=reason,
        status=status,
        diagnostic=f"{status} {reason}",
        remote_domain=email.rpartition("@")[2],
    )


def _record(settings: Settings, delivery_id: int | None, result: BounceResult, **kw) -> str:  # type: ignore[no-untyped-def]
    with session_scope() as session:
        return record_bounce(
            session, settings, result, delivery_id=delivery_id, source="test", **kw
        ).action


SOFT = _bounce("soft", "mailboxfull", "4.2.2")


def test_hard_bounce_suppresses_at_once_and_imports_skip_the_address(
    bounce_settings: Settings,
) -> None:
    (sent,) = send_digest([READER])
    assert _record(bounce_settings, sent.delivery_id, _bounce("hard", "userunknown", "5.1.1")) == (
        "suppressed"
    )
    status, _, subs = subscriber_state(READER)
    assert (status, subs) == ("bounced", {"news": "confirmed"})
    assert is_suppressed(READER)
    assert events_for(sent.delivery_id) == [("hard", "userunknown")]
    with session_scope() as session:
        result = subscribe(
            session,
            bounce_settings,
            email=READER,
            name="",
            list_slug="news",
            consent=ConsentRecord(source="import"),
            confirmed=True,
        )
    assert result.outcome is Outcome.suppressed


def test_three_soft_bounces_in_a_row_suppress(bounce_settings: Settings) -> None:
    sends = [send_digest([READER], subject=f"d{i}")[0] for i in range(3)]
    assert _record(bounce_settings, sends[0].delivery_id, SOFT) == "scored"
    assert _record(bounce_settings, sends[1].delivery_id, SOFT) == "scored"
    assert subscriber_state(READER)[:2] == ("active", 2)
    assert not is_suppressed(READER)
    assert _record(bounce_settings, sends[2].delivery_id, SOFT) == "suppressed"
    assert subscriber_state(READER)[:2] == ("bounced", 3)
    assert is_suppressed(READER)


def test_a_delay_notice_and_the_final_failure_of_one_message_count_once(
    bounce_settings: Settings,
) -> None:
    (sent,) = send_digest([READER])
    _record(bounce_settings, sent.delivery_id, _bounce("soft", "delayed", "4.4.7"))
    _record(bounce_settings, sent.delivery_id, _bounce("soft", "expired", "4.4.7"))
    assert subscriber_state(READER)[:2] == ("active", 1)


def test_a_successful_delivery_resets_the_soft_score(bounce_settings: Settings) -> None:
    d1, d2, d3, d4 = (send_digest([READER], subject=f"d{i}")[0] for i in range(4))
    _record(bounce_settings, d1.delivery_id, SOFT)
    _record(bounce_settings, d2.delivery_id, SOFT)
    # d3 went through: no bounce ever came back for it.
    assert _record(bounce_settings, d4.delivery_id, SOFT) == "scored"
    assert subscriber_state(READER)[:2] == ("active", 1)


def test_an_auto_reply_proves_the_mailbox_alive(bounce_settings: Settings) -> None:
    d1, d2, d3 = (send_digest([READER], subject=f"d{i}")[0] for i in range(3))
    _record(bounce_settings, d1.delivery_id, SOFT)
    assert _record(bounce_settings, d2.delivery_id, _bounce("ignore", "vacation")) == "ignored"
    _record(bounce_settings, d3.delivery_id, SOFT)
    assert subscriber_state(READER)[:2] == ("active", 1)


def test_soft_bounces_that_arrive_out_of_order_still_add_up(bounce_settings: Settings) -> None:
    d1, d2, d3 = (send_digest([READER], subject=f"d{i}")[0] for i in range(3))
    _record(bounce_settings, d3.delivery_id, SOFT)
    _record(bounce_settings, d1.delivery_id, SOFT)  # d2's DSN is still on its way
    assert subscriber_state(READER)[0] == "active"
    assert _record(bounce_settings, d2.delivery_id, SOFT) == "suppressed"


def test_soft_bounces_older_than_the_window_do_not_count(bounce_settings: Settings) -> None:
    d1, d2, d3 = (send_digest([READER], subject=f"d{i}")[0] for i in range(3))
    old = utcnow() - timedelta(days=bounce_settings.soft_bounce_days + 1)
    _record(bounce_settings, d1.delivery_id, SOFT, now=old)
    _record(bounce_settings, d2.delivery_id, SOFT)
    assert _record(bounce_settings, d3.delivery_id, SOFT) == "scored"
    assert subscriber_state(READER)[:2] == ("active", 2)


def test_the_soft_limit_is_configurable(
    bounce_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = bounce_settings.model_copy(update={"soft_bounce_limit": 1})
    (sent,) = send_digest([READER])
    assert _record(settings, sent.delivery_id, SOFT) == "suppressed"


def test_a_complaint_unsubscribes_from_every_list_and_suppresses(
    bounce_settings: Settings,
) -> None:
    (sent,) = send_digest([READER], slug="news")
    send_digest([READER], slug="sport")
    complaint = _bounce("complaint", "feedback")
    assert _record(bounce_settings, sent.delivery_id, complaint) == "unsubscribed"
    status, _, subs = subscriber_state(READER)
    assert status == "complained"
    assert subs == {"news": "unsubscribed", "sport": "unsubscribed"}
    assert is_suppressed(READER)
    # A later hard bounce does not turn "complained" into "bounced".
    (later,) = send_digest([READER], subject="later")
    _record(bounce_settings, later.delivery_id, _bounce("hard", "userunknown", "5.1.1"))
    assert subscriber_state(READER)[0] == "complained"


def test_policy_blocks_keep_the_reader_and_are_counted_per_domain(
    bounce_settings: Settings,
) -> None:
    sends = send_digest([READER, "bo@example.net", "cy@mail.example.org"])
    blocked = _bounce("policy", "blocked", "5.7.1")
    for s in sends:
        result = _bounce("policy", "blocked", "5.7.1", email=s.email)
        assert _record(bounce_settings, s.delivery_id, result) == "counted"
    assert blocked.kind == "policy"
    assert subscriber_state(READER)[0] == "active"
    assert not is_suppressed(READER)
    with session_scope() as session:
        report = bounce_report(session)
    assert [(r["domain"], r["count"]) for r in report["policy_by_domain"]] == [
        ("example.net", 2),
        ("mail.example.org", 1),
    ]
    assert report["totals"]["policy"] == 3


def test_the_same_bounce_twice_changes_nothing_the_second_time(
    bounce_settings: Settings,
) -> None:
    (sent,) = send_digest([READER])
    assert _record(bounce_settings, sent.delivery_id, SOFT) == "scored"
    assert _record(bounce_settings, sent.delivery_id, SOFT) == "duplicate"
    assert subscriber_state(READER)[:2] == ("active", 1)
    assert len(events_for(sent.delivery_id)) == 1


def test_without_a_delivery_the_address_is_matched_only_when_allowed(
    bounce_settings: Settings,
) -> None:
    send_digest([READER])
    hard = _bounce("hard", "userunknown", "5.1.1")
    assert _record(bounce_settings, None, hard) == "unmatched"
    assert subscriber_state(READER)[0] == "active"
    assert _record(bounce_settings, None, hard, match_address=True) == "suppressed"
    assert subscriber_state(READER)[0] == "bounced"
    unknown = _bounce("hard", "userunknown", "5.1.1", email="nobody@example.net")
    assert _record(bounce_settings, None, unknown, match_address=True) == "unmatched"


def test_an_operator_can_lift_a_suppression(bounce_settings: Settings) -> None:
    (sent,) = send_digest([READER])
    _record(bounce_settings, sent.delivery_id, _bounce("hard", "userunknown", "5.1.1"))
    with session_scope() as session:
        assert unsuppress(session, bounce_settings, READER.upper())
    assert subscriber_state(READER)[:2] == ("active", 0)
    assert not is_suppressed(READER)
    with session_scope() as session:
        assert not unsuppress(session, bounce_settings, READER)


@pytest.mark.parametrize(
    ("code", "reply", "kind"),
    [
        (550, "5.1.1 <a@example.net>: Recipient address rejected: User unknown", "hard"),
        (550, "Requested action not taken: mailbox unavailable", "hard"),
        (554, "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen", "policy"),
        (552, "5.2.2 Mailbox full", "soft"),
        (452, "4.2.2 Over quota", "soft"),
        (450, "4.1.1 User unknown (try again)", "soft"),
    ],
)
def test_a_refusal_during_our_own_send_is_classified_like_a_dsn(
    code: int, reply: str, kind: str
) -> None:
    assert smtp_refusal("a@example.net", code, reply).kind == kind
