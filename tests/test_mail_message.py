"""message_bytes (newsletter/mail/message.py) writes exactly what the email package writes.

The reference is `build_message(...).as_bytes()`; both get the same Date, Message-ID and
boundary (the parts the generator makes up), and the bytes must then be equal: every
header's folding and RFC 2047 words, the parts' quoted-printable, the layout. A reader's
mail client sees no difference because there is none.
"""

from __future__ import annotations

import email
from email import policy
from email.headerregistry import Address

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from newsletter.mail.message import address, build_message, message_bytes

BOUNDARY = "===============0123456789012345678=="
SENDERS = [
    address("news@example.com", "The Newsroom"),
    address("news@example.com"),
    address("news@example.com", "Новини Бахмута"),
    address("news@example.com", 'The "Daily", Ltd.'),
]
NAMES = [
    "",
    "Reader 5",
    "O'Brien",
    "J. Smith",
    'Say "hi"',
    "Doe, John",
    "Олена Коваленко",
    "Réader Ünicode",
    '<b>O\'Brien & "Sons"</b>',
    "=?utf-8?q?forged?=",
    "x" * 90,
]
SUBJECTS = [
    "Confirm your subscription to The Bench Daily",
    "Підтвердіть підписку на «Новини»",
    "A subject long enough that the policy has to fold it somewhere along the line, twice",
    "two  spaces and a trailing one ",
    "=?utf-8?q?looks_encoded?=",
]
BODIES = [
    "Hello,\nplease confirm: https://news.example.com/confirm/AbC012\n",
    "",
    "no newline at the end",
    "CRLF\r\nCR\rLF\n\n\nblank lines",
    "trailing space \nand tab\t\n.\nFrom the start of a line\n= and =3D\n" + "x" * 200,
    "Вітаємо, Олена! " * 30,
]
HEADERS = [
    {"Auto-Submitted": "auto-generated"},
    {
        "Auto-Submitted": "auto-generated",
        "List-Unsubscribe": "<https://news.example.com/unsubscribe/" + "a" * 90 + ">",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
]


def both(
    sender: Address, to: Address, subject: str, text: str, html: str, headers: dict[str, str]
) -> tuple[bytes, bytes]:
    mail = {"sender": sender, "to": to, "subject": subject, "text": text, "html": html}
    ref = build_message(**mail, headers=headers, message_id="<1.2.3@example.com>")
    ref.set_boundary(BOUNDARY)
    written = ref.as_bytes()  # where the reference refuses what it cannot write
    fast = message_bytes(
        **mail,
        headers=headers,
        message_id="<1.2.3@example.com>",
        date=str(ref["Date"]),
        boundary=BOUNDARY,
    )
    return written, fast


@pytest.mark.parametrize("sender", SENDERS, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_every_header_is_written_as_the_email_package_writes_it(sender: Address, name: str) -> None:
    for email_address in ("reader@example.org", "first.last+news@mail.subdomain.example.org"):
        for subject in SUBJECTS:
            for headers in HEADERS:
                ref, fast = both(
                    sender, address(email_address, name), subject, "Hi\n", "<p>Hi</p>", headers
                )
                assert fast == ref, (name, subject)


@pytest.mark.parametrize("body", BODIES)
def test_every_body_is_encoded_as_the_email_package_encodes_it(body: str) -> None:
    ref, fast = both(
        SENDERS[0], address("reader@example.org", "Reader"), SUBJECTS[0], body, body, HEADERS[0]
    )
    assert fast == ref
    # And what a mail client reads back is the text as written (line ends made CRLF).
    parts = email.message_from_bytes(fast, policy=policy.default).get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    expected = "\n".join(body.splitlines()) + "\n"
    assert parts[0].get_content().replace("\r\n", "\n") == expected


@settings_(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(max_size=60),
    subject=st.text(min_size=1, max_size=120),
    body=st.text(max_size=400),
)
def test_any_reader_name_subject_and_body(name: str, subject: str, body: str) -> None:
    """Arbitrary text: the same bytes, or the same refusal (the email package refuses a
    header value with a line break in it, and so does message_bytes)."""
    try:
        to = address("r@example.org", name)  # refuses a line break in the name
    except ValueError:
        return
    try:
        ref, fast = both(SENDERS[0], to, subject, body, body, {})
    except Exception as exc:  # noqa: BLE001 - whatever it is, the fast path must match it
        with pytest.raises(type(exc)):
            message_bytes(sender=SENDERS[0], to=to, subject=subject, text=body, html=body)
        return
    assert fast == ref


def test_a_fresh_boundary_and_message_id_each_time() -> None:
    mail = {
        "sender": SENDERS[0],
        "to": address("reader@example.org"),
        "subject": "Hi",
        "text": "Hi",
        "html": "<p>Hi</p>",
    }
    one, two = (
        email.message_from_bytes(message_bytes(**mail)),
        email.message_from_bytes(message_bytes(**mail)),
    )
    assert one.get_boundary() != two.get_boundary()
    assert one["Message-ID"] != two["Message-ID"]
    assert one["Message-ID"].endswith("@example.com>")
    assert not one.defects and not one.get_payload()[1].defects
