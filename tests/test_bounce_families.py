"""General rules for mail families the classifier first met in real traffic (issue item 18):
final reports with a 4.x.x code that say the user is unknown, Exim's and Sendmail's
host-unknown wording without DSN fields, a returned original pasted without a marker,
Amazon SES complaints e-mailed as JSON, and ARF reports as large mailbox providers send
them. Each rule is checked on variants of the fixtures (tests/fixtures/bounces), not only
on the fixture itself. Pure parsing: no database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.bounces import BounceResult, analyse
from newsletter.bounces.classify import classify

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"


def _raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _one(raw: bytes) -> BounceResult:
    results = analyse(raw)
    assert len(results) == 1, results
    return results[0]


# --------------------------------------------------------------------------- final 4.x.x


@pytest.mark.parametrize(
    "diagnostic",
    [
        b"450 4.1.1 <reader40@mailhost.example>: Recipient address rejected: User unknown",
        b"451 4.0.0 No such user here",
        b"450 mailbox reader40@mailhost.example does not exist",
        b"452 4.1.1 Unknown recipient",
    ],
)
def test_a_final_dsn_with_a_4xx_code_that_says_user_unknown_is_hard(diagnostic: bytes) -> None:
    raw = _raw("dsn-failed-4xx-user-unknown.eml")
    start = raw.index(b"Diagnostic-Code: smtp; ") + len(b"Diagnostic-Code: smtp; ")
    end = raw.index(b"\n\n", start)
    result = _one(raw[:start] + diagnostic + raw[end:])
    assert (result.kind, result.reason, result.action) == ("hard", "userunknown", "failed")
    assert result.status.startswith("4")


@pytest.mark.parametrize(
    "diagnostic",
    [
        b"450 4.2.1 Mailbox temporarily unavailable, try again later",
        b"451 4.3.0 Temporary lookup failure",
        b"450 4.7.1 Greylisted, please come back later",
        b"421 4.7.0 Too many connections, rate limited",
    ],
)
def test_a_final_dsn_with_a_4xx_code_and_a_passing_reason_stays_soft(diagnostic: bytes) -> None:
    raw = _raw("dsn-failed-4xx-user-unknown.eml")
    start = raw.index(b"Diagnostic-Code: smtp; ") + len(b"Diagnostic-Code: smtp; ")
    end = raw.index(b"\n\n", start)
    raw = raw[:start] + diagnostic + raw[end:]
    raw = raw.replace(b"Status: 4.1.1", b"Status: 4.0.0").replace(b"User unknown", b"")
    assert _one(raw).kind != "hard"


def test_the_same_dsn_still_being_retried_is_soft() -> None:
    raw = _raw("dsn-failed-4xx-user-unknown.eml").replace(b"Action: failed", b"Action: delayed")
    result = _one(raw)
    assert (result.kind, result.reason) == ("soft", "delayed")


def test_a_4xx_user_unknown_alone_is_still_soft_for_the_classifier() -> None:
    # Only a final report makes it hard: the receiver's own 450 during our SMTP session
    # (or a delay notice) may still be a passing state.
    assert classify("4.1.1", "450 4.1.1 User unknown")[0] == "soft"


def test_an_exim_warning_with_a_450_user_unknown_is_not_hard() -> None:
    raw = _raw("exim-gave-up-450-user-unknown.eml").replace(
        b"Subject: Mail delivery failed: returning message to sender",
        b"Subject: Warning: message 1spQrs-0004Ab-9K delayed 24 hours",
    )
    raw = raw.replace(b"This is a permanent error.", b"Delivery will continue to retry.")
    assert _one(raw).kind == "soft"


# --------------------------------------------------------------------------- host unknown


@pytest.mark.parametrize(
    "text",
    [
        "Unrouteable address",
        'unrouteable mail domain "gone.example"',
        "all relevant MX records point to non-existent hosts",
        "all host address lookups failed permanently",
        "Host unknown (Name server: mx.gone.example: host not found)",
        "Name server: gone.example.: host not found",
        "553 5.1.2 Illegal host/domain name found",
    ],
)
def test_exim_and_sendmail_host_unknown_wording_is_hard_without_a_status(text: str) -> None:
    assert classify("", text) == ("hard", "hostunknown")


@pytest.mark.parametrize(
    "name", ["exim-unrouteable-address.eml", "exim-mx-nonexistent.eml", "sendmail-host-unknown.eml"]
)
def test_host_unknown_bounces_name_the_reader(name: str) -> None:
    result = _one(_raw(name))
    assert (result.kind, result.reason, result.status) == ("hard", "hostunknown", "")
    assert result.recipient is not None and result.recipient.startswith("reader")


def test_a_pasted_original_does_not_lend_its_headers_to_the_verdict() -> None:
    # Received-SPF / DKIM-Signature / X-Spam lines of the returned copy are not the
    # receiver's words: without the cut they read as an SPF/DKIM policy refusal.
    result = _one(_raw("pasted-original-host-unknown.eml"))
    assert (result.kind, result.reason) == ("hard", "hostunknown")
    assert "spf" not in result.diagnostic.lower()


def test_sendmails_unsent_message_marker_cuts_the_copy() -> None:
    result = _one(_raw("sendmail-host-unknown.eml"))
    assert "dkim" not in result.diagnostic.lower()
    assert result.kind == "hard"


# --------------------------------------------------------------------------- SES complaints


def _ses_mail(body: str, content_type: str = "text/plain; charset=UTF-8") -> bytes:
    return (
        "From: AWS Notifications <no-reply@sns.amazonaws.com>\n"
        "To: bounces+TESTTOKEN@bounces.example.com\n"
        "Subject: AWS Notification Message\n"
        f"MIME-Version: 1.0\nContent-Type: {content_type}\n\n{body}\n"
    ).encode()


COMPLAINT = {
    "notificationType": "Complaint",
    "complaint": {
        "complainedRecipients": [{"emailAddress": "reader60@mail.example"}],
        "complaintFeedbackType": "abuse",
        "timestamp": "2024-09-20T10:00:00.000Z",
    },
    "mail": {"source": "news@example.com", "destination": ["reader60@mail.example"]},
}


@pytest.mark.parametrize(
    "name",
    [
        "ses-complaint-notification.eml",
        "ses-complaint-folded-json.eml",
        "ses-complaint-sns-envelope.eml",
    ],
)
def test_ses_complaint_fixtures_are_complaints(name: str) -> None:
    result = _one(_raw(name))
    assert (result.kind, result.reason, result.feedback_type) == ("complaint", "feedback", "abuse")


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(COMPLAINT),
        json.dumps(COMPLAINT, indent=4),
        json.dumps({"Type": "Notification", "Message": json.dumps(COMPLAINT)}, indent=2),
        # Hard-wrapped by a relay at 60 characters, inside strings too.
        "\n".join(json.dumps(COMPLAINT)[i : i + 60] for i in range(0, 400, 60)),
        json.dumps({**COMPLAINT, "notificationType": None, "eventType": "Complaint"}),
        # No complainedRecipients: the destination of the mail complained about.
        json.dumps({**COMPLAINT, "complaint": {"complaintFeedbackType": "abuse"}}),
    ],
    ids=["one-line", "pretty", "sns-envelope", "hard-wrapped", "event-type", "destination"],
)
def test_ses_complaint_json_in_any_shape_is_a_complaint(body: str) -> None:
    result = _one(_ses_mail(body))
    assert (result.kind, result.recipient) == ("complaint", "reader60@mail.example")


def test_unreadable_ses_complaint_json_is_still_a_complaint() -> None:
    body = json.dumps(COMPLAINT)[:-40]  # cut off: not valid JSON any more
    result = _one(_ses_mail(body))
    assert (result.kind, result.recipient) == ("complaint", "reader60@mail.example")


def test_ses_complaint_as_the_text_part_of_a_multipart_mail() -> None:
    body = (
        f"--b1\nContent-Type: text/plain\n\n{json.dumps(COMPLAINT)}\n"
        "--b1\nContent-Type: text/html\n\n<p>notification</p>\n--b1--"
    )
    result = _one(_ses_mail(body, 'multipart/alternative; boundary="b1"'))
    assert result.kind == "complaint"


# --------------------------------------------------------------------------- ARF variants


@pytest.mark.parametrize(
    "name",
    [
        "arf-report-as-text-plain.eml",
        "arf-feedback-type-missing.eml",
        "arf-odd-case-blank-line.eml",
        "jmrp-complaint-multipart-mixed.eml",
    ],
)
def test_provider_feedback_reports_are_complaints(name: str) -> None:
    result = _one(_raw(name))
    assert (result.kind, result.reason, result.feedback_type) == ("complaint", "feedback", "abuse")
    assert result.recipient is not None and result.recipient.startswith("reader")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("abuse", "complaint"),
        ("ABUSE", "complaint"),
        ('"Abuse"; reported by user', "complaint"),
        ("fraud", "complaint"),
        ("opt-out", "complaint"),
        ("not-spam", "ignore"),
        ("auth-failure", "policy"),
        ("AUTH-FAILURE", "policy"),
    ],
)
def test_feedback_type_in_any_case_and_form(value: str, kind: str) -> None:
    raw = _raw("arf-report-as-text-plain.eml").replace(
        b"Feedback-Type: abuse", b"Feedback-Type: " + value.encode()
    )
    assert _one(raw).kind == kind


def test_a_report_without_feedback_type_but_with_auth_failure_fields_is_policy() -> None:
    raw = _raw("arf-feedback-type-missing.eml").replace(
        b"Version: 0.1\n", b"Version: 1\nAuth-Failure: dmarc\n"
    )
    assert _one(raw).kind == "policy"


def test_report_type_is_matched_in_any_case_and_quoting() -> None:
    raw = _raw("arf-report-as-text-plain.eml").replace(
        b"report-type=feedback-report", b'Report-Type="FEEDBACK-REPORT"'
    )
    assert _one(raw).kind == "complaint"


def test_a_bounce_that_mentions_abuse_reports_is_not_a_complaint() -> None:
    # The JMRP rule needs an abuse-report wording, a non-daemon sender and no DSN.
    raw = _raw("postfix-user-unknown.eml").replace(
        b"The mail system", b"The mail system. This is an email abuse report desk too."
    )
    assert _one(raw).kind == "hard"


def test_the_block_that_names_its_feedback_type_is_the_report() -> None:
    # The human-readable part quotes two report fields; the report itself says auth-failure.
    raw = _raw("arf-report-as-text-plain.eml")
    raw = raw.replace(
        b"that came from your network. Please act on it.\n",
        b"that came from your network. Please act on it.\n\n"
        b"Source-IP: 192.0.2.10\nArrival-Date: Wed, 11 Sep 2024 22:01:36 +0000\n",
    ).replace(b"Feedback-Type: abuse", b"Feedback-Type: auth-failure")
    assert _one(raw).kind == "policy"


@pytest.mark.parametrize(
    ("name", "boundary"),
    [
        ("arf-report-as-text-plain.eml", b'boundary="----=_fbl_boundary_0912"'),
        ("ses-complaint-sns-envelope.eml", b'boundary="----=_Part_551_2093847.1726068603"'),
    ],
)
def test_a_complaint_whose_mime_boundary_is_broken_is_still_a_complaint(
    name: str, boundary: bytes
) -> None:
    raw = _raw(name).replace(boundary, b'boundary="no-such-boundary"')
    result = _one(raw)
    assert result.kind == "complaint"
    assert result.recipient is not None and result.recipient.startswith("reader")
