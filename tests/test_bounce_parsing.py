"""Bounce parsing and classification, on hand-written fixtures modelled on real MTAs.

The fixtures live in tests/fixtures/bounces with their expected outcome in expected.json.
Nothing here touches a database or the settings: the parser is a pure function.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from newsletter.bounces import BounceResult, analyse, verp_token
from newsletter.bounces.classify import classify
from newsletter.config import Settings
from newsletter.mail.verp import decode_verp, looks_like_verp, verp_address

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
EXPECTED: dict[str, dict[str, str | None]] = json.loads((FIXTURES / "expected.json").read_text())


def _load(name: str) -> list[BounceResult]:
    return analyse((FIXTURES / name).read_bytes())


def _only(name: str) -> BounceResult:
    results = _load(name)
    assert len(results) == 1, results
    return results[0]


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=lambda n: n.removesuffix(".eml"))
def test_fixture_matches_expected_outcome(name: str) -> None:
    want = EXPECTED[name]
    results = _load(name)
    if want["kind"] is None:
        assert results == []
        return
    assert len(results) == 1
    got = results[0]
    assert got.recipient == want["recipient"]
    assert got.kind == want["kind"]
    assert got.reason == want["reason"]
    assert got.status == want["status"]
    if "feedback_type" in want:
        assert got.feedback_type == want["feedback_type"]


def test_fixture_set_covers_at_least_thirty_messages() -> None:
    assert len(EXPECTED) >= 30
    assert {p.name for p in FIXTURES.glob("*.eml")} == set(EXPECTED)


@pytest.mark.parametrize(
    "name", sorted(n for n, w in EXPECTED.items() if w["kind"] in ("policy", "soft"))
)
def test_policy_and_soft_fixtures_are_never_hard(name: str) -> None:
    assert all(r.kind != "hard" for r in _load(name))


# --------------------------------------------------------------------------- behaviour


def test_postfix_user_unknown_is_hard() -> None:
    result = _only("postfix-user-unknown.eml")
    assert (result.kind, result.reason, result.status) == ("hard", "userunknown", "5.1.1")
    assert result.remote_domain == "example.net"
    assert "User unknown in virtual mailbox table" in result.diagnostic
    assert result.action == "failed"
    assert result.remote_mta == "mx.example.net"


def test_spamhaus_listing_is_policy_not_hard() -> None:
    result = _only("postfix-spamhaus-blocked.eml")
    assert (result.kind, result.reason) == ("policy", "blocked")


def test_dmarc_rejection_is_policy() -> None:
    assert _only("gmail-dmarc.eml").reason == "authfailure"


def test_mailbox_full_is_soft() -> None:
    assert _only("postfix-mailbox-full.eml").kind == "soft"


def test_exim_bounce_marked_auto_replied_is_not_an_autoreply() -> None:
    # Exim stamps its bounces "Auto-Submitted: auto-replied", like a vacation message.
    result = _only("exim-user-unknown.eml")
    assert (result.kind, result.reason) == ("hard", "userunknown")


def test_delayed_dsn_is_soft_even_with_a_hard_sounding_text() -> None:
    raw = (FIXTURES / "postfix-delayed.eml").read_bytes()
    raw = raw.replace(b"Connection timed out", b"User unknown")
    result = analyse(raw)[0]
    assert (result.kind, result.reason) == ("soft", "delayed")


def test_out_of_office_reply_is_ignored_and_names_the_reader() -> None:
    result = _only("out-of-office.eml")
    assert (result.kind, result.reason) == ("ignore", "vacation")
    assert result.recipient == "reader31@example.net"


def test_arf_abuse_report_is_a_complaint() -> None:
    result = _only("arf-abuse.eml")
    assert (result.kind, result.feedback_type) == ("complaint", "abuse")


def test_arf_auth_failure_report_is_policy_not_a_complaint() -> None:
    result = _only("arf-auth-failure.eml")
    assert (result.kind, result.feedback_type) == ("policy", "auth-failure")


def test_delivery_confirmation_is_ignored() -> None:
    assert _only("rfc3464-delivered.eml").kind == "ignore"


def test_verp_token_is_decoded_from_the_bounce_recipients() -> None:
    result = _only("postfix-user-unknown.eml")
    assert "bounces+testtoken@bounces.example.com" in result.sent_to
    assert result.original_envelope == result.sent_to
    assert result.verp_token() == "testtoken"


def test_smtp_envelope_recipients_are_added_to_sent_to() -> None:
    raw = (FIXTURES / "qmail-no-mailbox.eml").read_bytes()
    result = analyse(raw, rcpt_to=["<bounces+abc123@bounce.example.com>"])[0]
    assert "bounces+abc123@bounce.example.com" in result.sent_to
    assert verp_token(["someone@example.org", "bounces+abc123@bounce.example.com"]) == "abc123"
    assert verp_token(["bounces@bounce.example.com"]) is None


def test_the_token_a_bounce_carries_is_the_one_the_sender_signed() -> None:
    # One VERP codec (newsletter.mail.verp) makes the address and reads it back.
    settings = Settings(bounce_domain="Bounces.Example.com", secret_key="verp-test-secret")
    address = verp_address(4711, settings)
    token = verp_token(["reader@example.org", f"<{address.upper()}>"])
    assert token is not None and token.lower() == address.partition("+")[2].partition("@")[0]
    assert decode_verp(f"<{address.upper()}>", settings) == 4711
    forged = address.replace("4711-", "4712-")
    assert decode_verp(forged, settings) is None and looks_like_verp(forged, settings)
    assert looks_like_verp("bounces+@bounces.example.com", settings)
    elsewhere = address.partition("@")[0] + "@elsewhere.example"
    assert not looks_like_verp(elsewhere, settings) and decode_verp(elsewhere, settings) is None
    assert not looks_like_verp("postmaster@bounces.example.com", settings)


def test_original_message_id_is_exposed_for_matching_the_send() -> None:
    result = _only("sendmail-user-unknown.eml")
    assert result.original_message_id == "<20250303090000.abc123@mail.example.com>"


def test_each_recipient_of_a_dsn_gets_its_own_result() -> None:
    raw = (FIXTURES / "rfc3464-generic.eml").read_bytes()
    second = (
        b"Final-Recipient: rfc822; reader99@example.org\n"
        b"Action: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 5.2.2 Mailbox full\n\n"
    )
    raw = raw.replace(
        b"\n--BOUNDARY.1741000000/mx.example.com\nContent-Description: Undel",
        b"\n" + second + b"--BOUNDARY.1741000000/mx.example.com\nContent-Description: Undel",
    )
    results = analyse(raw)
    assert [(r.recipient, r.kind) for r in results] == [
        ("reader28@example.net", "hard"),
        ("reader99@example.org", "soft"),
    ]


def test_result_is_immutable() -> None:
    result = _only("postfix-user-unknown.eml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.kind = "soft"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        ("5.1.1", "550 5.1.1 <a@b.example>: Recipient address rejected: User unknown", "hard"),
        ("5.7.1", "554 5.7.1 Service unavailable; client host blocked using bl.example", "policy"),
        ("5.7.1", "550 5.7.1 No such user here", "hard"),
        ("5.7.0", "550 5.7.0 Rejected", "policy"),
        ("4.2.2", "452 4.2.2 Mailbox full", "soft"),
        ("4.1.1", "450 4.1.1 User unknown", "soft"),
        ("4.7.1", "451 4.7.1 Greylisted, please try again later", "soft"),
        ("5.1.1", "550 5.1.1 Message rejected as spam by content filter", "policy"),
        ("5.0.0", "550 Message too big for this system", "policy"),
        ("", "", "soft"),
    ],
)
def test_status_and_text_rules(status: str, text: str, kind: str) -> None:
    assert classify(status, text)[0] == kind


# --------------------------------------------------------------------------- robustness


_GARBAGE: list[bytes] = [
    b"",
    b"\x00" * 64,
    b"   \n\n  ",
    b"not an email at all",
    b"Content-Type: multipart/report; boundary=\n\n--\n--",
    b"Content-Type: message/delivery-status\n\nFinal-Recipient: ;\nAction:\nStatus: 9.9.9.9\n",
    b"Content-Type: message/feedback-report\n\n\xff\xfe\x00garbage",
    b"From: =?utf-8?b?!!!?= <>\nSubject: =?bogus-charset?q?x?=\n\nhello",
    b"Content-Type: text/plain; charset=no-such-charset\n"
    b"Content-Transfer-Encoding: base64\n\n@@@not base64@@@",
    b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--a\n" * 2000,
    b"From: MAILER-DAEMON@x\nSubject: Undeliverable\n\n" + b"550 " * 100_000,
    bytes(range(256)) * 50,
]


@pytest.mark.parametrize("raw", _GARBAGE, ids=range(len(_GARBAGE)))
def test_garbage_never_raises(raw: bytes) -> None:
    results = analyse(raw)
    assert isinstance(results, list)
    assert all(isinstance(r, BounceResult) for r in results)


def test_non_bytes_input_never_raises() -> None:
    assert analyse(None) == []  # type: ignore[arg-type]
    assert isinstance(analyse("Subject: text instead of bytes\n\nhi"), list)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(EXPECTED)[:12])
def test_truncated_fixtures_never_raise(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    for cut in range(0, len(raw), max(1, len(raw) // 25)):
        assert isinstance(analyse(raw[:cut]), list)


def test_random_bytes_never_raise() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        assert isinstance(analyse(rng.randbytes(rng.randint(0, 4000))), list)


def test_huge_message_is_handled() -> None:
    raw = (FIXTURES / "postfix-user-unknown.eml").read_bytes()
    huge = raw.replace(b"Hello reader", b"x" * 5_000_000)
    assert _only("postfix-user-unknown.eml").kind == analyse(huge)[0].kind
