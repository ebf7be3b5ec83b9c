"""The one verdict for provider webhooks: the provider's own flag and the receiver's words.

Each row of the table in newsletter/bounces/verdict.py, with texts whose classification is
checked first, so a change in the classifier shows up as such and not as a verdict bug.
"""

from __future__ import annotations

import pytest

from newsletter.bounces.classify import Kind, classify
from newsletter.bounces.verdict import decide, verdict

POLICY = ("5.7.1", "550 5.7.1 Service unavailable; client host blocked using Spamhaus")
HARD = ("5.1.1", "550 5.1.1 <a@example.org>: Recipient address rejected: User unknown")
HARD_TEMPORARY = ("4.1.1", "450 4.1.1 <a@example.org>: Recipient address rejected: User unknown")
SOFT = ("4.2.2", "452 4.2.2 Mailbox full")
VAGUE = ("", "")


def test_the_texts_classify_as_the_table_assumes() -> None:
    assert classify(*POLICY) == ("policy", "blocked")
    assert classify(*HARD) == ("hard", "userunknown")
    assert classify(*HARD_TEMPORARY) == ("soft", "userunknown")
    assert classify(*SOFT) == ("soft", "mailboxfull")
    assert classify(*VAGUE) == ("soft", "undefined")


@pytest.mark.parametrize(
    ("provider", "text", "expected"),
    [
        # No verdict from the provider: the text decides.
        ((None, "userunknown"), POLICY, ("policy", "blocked")),
        ((None, "userunknown"), HARD, ("hard", "userunknown")),
        ((None, "userunknown"), SOFT, ("soft", "mailboxfull")),
        # Hard: policy text wins; otherwise hard, with a hard reason from the text.
        (("hard", "suppressed"), POLICY, ("policy", "blocked")),
        (("hard", "suppressed"), HARD, ("hard", "userunknown")),
        (("hard", "suppressed"), HARD_TEMPORARY, ("hard", "userunknown")),
        (("hard", "suppressed"), SOFT, ("hard", "suppressed")),
        (("hard", "suppressed"), VAGUE, ("hard", "suppressed")),
        # Soft: policy text wins; otherwise soft, with the text's reason when it has one.
        (("soft", "networkerror"), POLICY, ("policy", "blocked")),
        (("soft", "networkerror"), HARD, ("soft", "userunknown")),
        (("soft", "networkerror"), SOFT, ("soft", "mailboxfull")),
        (("soft", "networkerror"), VAGUE, ("soft", "networkerror")),
        # Policy: the text may name the policy or make it temporary, never hard.
        (("policy", "blocked"), ("5.7.1", "550 5.7.1 SPF check failed"), ("policy", "authfailure")),
        (("policy", "blocked"), HARD, ("policy", "blocked")),
        (("policy", "blocked"), SOFT, ("soft", "mailboxfull")),
        # Complaints and ignores always stand.
        (("complaint", "feedback"), HARD, ("complaint", "feedback")),
        (("ignore", "autoreply"), POLICY, ("ignore", "autoreply")),
    ],
)
def test_the_provider_flag_and_the_text(
    provider: tuple[Kind | None, str], text: tuple[str, str], expected: tuple[Kind, str]
) -> None:
    assert decide(*provider, *text) == expected


@pytest.mark.parametrize("kind", ["hard", "soft", "policy"])
def test_a_final_provider_verdict_stands_whatever_the_text_says(kind: Kind) -> None:
    for text in (POLICY, HARD, SOFT, VAGUE):
        assert decide(kind, "mesgtoobig", *text, final=True) == (kind, "mesgtoobig")


@pytest.mark.parametrize(
    ("provider", "text", "expected"),
    [
        # Postmark: the text's reason only within the kind Postmark chose.
        (("hard", "userunknown"), POLICY, ("policy", "blocked")),
        (("hard", "userunknown"), ("5.1.2", "550 5.1.2 Host not found"), ("hard", "hostunknown")),
        (("hard", "userunknown"), ("4.1.2", "450 4.1.2 Host not found"), ("hard", "userunknown")),
        (("soft", "undefined"), SOFT, ("soft", "mailboxfull")),
        (("soft", "undefined"), HARD, ("soft", "undefined")),
        (("soft", "networkerror"), VAGUE, ("soft", "networkerror")),
    ],
)
def test_same_kind_only_refines_within_the_providers_kind(
    provider: tuple[Kind, str], text: tuple[str, str], expected: tuple[Kind, str]
) -> None:
    assert decide(*provider, *text, same_kind_only=True) == expected


def test_the_result_carries_the_payload_fields() -> None:
    result = verdict(
        "reader@Example.ORG",
        "hard",
        "userunknown",
        *HARD,
        message_id="<m@x>",
        action="failed",
        remote_mta="dsn; mx.example.org",
    )
    assert (result.kind, result.reason, result.status) == ("hard", "userunknown", "5.1.1")
    assert result.diagnostic == HARD[1] and result.remote_domain == "example.org"
    assert result.original_message_id == "<m@x>" and result.feedback_type == ""
    assert (result.action, result.remote_mta) == ("failed", "dsn; mx.example.org")
    assert verdict("a@example.org", "complaint", "feedback").feedback_type == "abuse"
    not_spam = verdict("a@example.org", "ignore", "feedback", feedback_type="not-spam")
    assert (not_spam.kind, not_spam.feedback_type) == ("ignore", "not-spam")
