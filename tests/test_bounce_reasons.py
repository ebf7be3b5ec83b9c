"""The receiver's words to a reason: the fast path (RE2 names the candidate patterns, ours
confirm them in order) answers exactly what the patterns alone answer, one after another,
case-insensitively, on the text as it came."""

from __future__ import annotations

import re
from email import message_from_bytes
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.bounces import classify
from newsletter.bounces.classify import REASON_PATTERNS, reason_from_text
from newsletter.bounces.parse import _bounce_text

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"


def reference(text: str) -> str:
    """The classifier as its patterns define it: each in priority order, IGNORECASE."""
    if not text:
        return ""
    return classify._first_reason(classify._URL.sub(r" \1 ", text), REASON_PATTERNS)


def fixture_texts() -> list[tuple[str, str]]:
    return [
        (path.name, _bounce_text(message_from_bytes(path.read_bytes())))
        for path in sorted(FIXTURES.glob("*.eml"))
    ]


def test_every_fixture_gets_the_reason_its_patterns_give() -> None:
    texts = fixture_texts()
    assert len(texts) >= 40
    reasons = {name: reason_from_text(text) for name, text in texts}
    assert reasons == {name: reference(text) for name, text in texts}
    # The corpus exercises the classifier: many reasons, and texts with none.
    assert len(set(reasons.values())) >= 10
    assert "" in reasons.values()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("550 5.7.1 Service unavailable; client host blocked using Spamhaus", "blocked"),
        ("550 5.1.1 <a@example.org>: Recipient address rejected: User unknown", "userunknown"),
        ("452 4.2.2 Mailbox full", "mailboxfull"),
        # The one look-behind: RE2 drops it, so "not listed in" is a candidate there that
        # Python's pattern then turns down.
        ("Your host is listed in our records", "blocked"),
        ("550 Address not listed in our directory", reference("not listed in our directory")),
        # Python's \s also matches \v and \x1c-\x1f, RE2's does not.
        ("452 4.2.2 Mailbox\vfull", "mailboxfull"),
        ("452 4.2.2 Mailbox\x1cfull", "mailboxfull"),
        # Not ASCII: the reference path, with Unicode case folding.
        ("552 Postfach voll – MAILBOX FULL", "mailboxfull"),
        ("Thank you for your message", ""),
        ("", ""),
    ],
)
def test_known_texts(text: str, reason: str) -> None:
    assert reason_from_text(text) == reason == reference(text)


# Words the patterns are made of, so random texts hit many of them and their order matters.
WORDS = sorted(
    {w for _, p in REASON_PATTERNS for w in re.findall(r"[a-z]{2,}", p.pattern)}
    | {"not", "is", "user", "https://spam.example/blocked?x=1", "ÿ", "İ", "550", "5.1.1"}
)
GAPS = st.sampled_from([" ", "  ", "\n", "\t", "\v", "\x1c", "-", ": ", "'s ", ".", ""])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(WORDS), GAPS, st.booleans()), max_size=14))
def test_random_texts_from_the_patterns_words(parts: list[tuple[str, str, bool]]) -> None:
    text = "".join((word.upper() if upper else word) + gap for word, gap, upper in parts)
    assert reason_from_text(text) == reference(text)


class SetOutOfMemory:
    """RE2's set when its automaton runs out of memory: it answers no match (None)."""

    def Match(self, text: str) -> None:  # noqa: N802 - RE2's name
        return None


def test_an_re2_set_out_of_memory_does_not_lose_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(classify, "_CANDIDATES", SetOutOfMemory())
    for _, text in fixture_texts():
        assert reason_from_text(text) == reference(text)
    assert reason_from_text("452 4.2.2 Mailbox full") == "mailboxfull"
