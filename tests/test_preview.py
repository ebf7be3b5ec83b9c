"""Preview and test send go through the path that sends: the same bytes but the fields."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import escape
from pathlib import Path

import dkim
import pytest
from sqlalchemy import select

from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.digests import fields
from newsletter.digests.compose import compose_digest, preview_digest
from newsletter.digests.preview import (
    SAMPLE_EMAIL,
    SAMPLE_READER,
    parse_message,
    part_content,
    preview_message,
)
from newsletter.digests.render import GMAIL_CLIP
from newsletter.mail.dkim import DkimKey, keys_from_settings
from newsletter.mail.fastpath import DigestTemplate, Recipient, qp_value
from newsletter.mail.verp import decode_system_verp
from newsletter.models import Digest, MailingList
from newsletter.sending import testsend
from newsletter.stories.parse import parse_story_file
from newsletter.stories.store import store_stories
from newsletter.subscriptions.lists import create_list
from newsletter.subscriptions.tokens import (
    make_preferences_token,
    make_unsubscribe_token,
    read_unsubscribe_token,
)
from tests.reference import fill
from tests.send_support import dkim_keys

FIXTURES = Path(__file__).parent / "fixtures" / "stories"
NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
T = 1_764_054_000.0  # a fixed Date for byte comparisons
OTHER = Recipient(
    delivery_id=77, email="zoe.other@example.org", name="Zoë Ærøskøbing", subscription_id=9
)


@pytest.fixture
def digest(database: str) -> tuple[MailingList, Digest]:
    """A stored draft of two sample stories, and its list."""
    with session_scope() as session:
        mlist = create_list(session, "daily", "The Daily Brief")
        drafts = parse_story_file(FIXTURES / "bakhmut.txt") + parse_story_file(
            FIXTURES / "harbour.md"
        )
        for d in drafts:
            d.published_at = d.published_at or NOW - timedelta(hours=1)
        store_stories(session, drafts, now=NOW - timedelta(hours=1))
        found = compose_digest(session, get_settings(), mlist, now=NOW)
        assert found is not None
        return mlist, found


def values_of(template: DigestTemplate, r: Recipient) -> dict[str, str]:
    return {
        fields.NAME: r.name,
        fields.EMAIL: r.email,
        fields.UNSUBSCRIBE_URL: template.unsubscribe_url(r.subscription_id),
        fields.PREFERENCES_URL: template.preferences_url(r.subscription_id),
    }


def sending_template(settings: Settings, mlist: MailingList, digest: Digest) -> DigestTemplate:
    """Built the way the send batch builds it (newsletter/sending/batch.py)."""
    return DigestTemplate(
        settings=settings,
        digest_id=digest.id,
        list_slug=mlist.slug,
        list_name=mlist.name,
        subject=digest.subject,
        text=digest.text,
        html=digest.html,
        dkim_keys=keys_from_settings(settings),
    )


def masked(raw: bytes, r: Recipient, url: str, preferences: str = "") -> bytes:
    """The message with the reader's own bytes masked: the MIME boundary (new per
    template), the To, Message-ID and List-Unsubscribe headers, and each value in the
    body (a value sits on whole lines of its own, so a line-anchored match finds it)."""
    boundary = re.search(rb'boundary="([^"]+)"', raw)
    assert boundary is not None
    raw = raw.replace(boundary.group(1), b"BOUNDARY")
    head, body = raw.split(b"\r\n\r\n", 1)
    headers = re.split(rb"\r\n(?![ \t])", head)
    for i, line in enumerate(headers):
        name = line.split(b":", 1)[0].lower()
        if name in (b"to", b"message-id", b"list-unsubscribe"):
            headers[i] = name + b": MASKED"
    for value in sorted({r.email, url, preferences, r.name}, key=len, reverse=True):
        if value:
            for encoded in {qp_value(value), qp_value(escape(value, quote=True))}:
                body = body.replace(b"\r\n" + encoded, b"\r\n" + qp_value(""))
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


def test_preview_is_a_readers_message_but_the_fields(digest: tuple[MailingList, Digest]) -> None:
    mlist, stored = digest
    settings = get_settings()
    preview = preview_message(settings, mlist, stored, now=T)
    sending = sending_template(settings, mlist, stored)
    sent = sending.render(OTHER, now=T)
    assert masked(
        preview.raw, SAMPLE_READER, sending.unsubscribe_url(0), sending.preferences_url(0)
    ) == masked(
        sent,
        OTHER,
        sending.unsubscribe_url(OTHER.subscription_id),
        sending.preferences_url(OTHER.subscription_id),
    )
    # And not trivially: the unmasked messages differ where the readers do.
    assert preview.raw != sent
    assert SAMPLE_EMAIL.encode() in preview.raw and OTHER.email.encode() not in preview.raw


def test_preview_parts_are_the_stored_digest_with_the_sample_values(
    digest: tuple[MailingList, Digest],
) -> None:
    mlist, stored = digest
    settings = get_settings()
    preview = preview_message(settings, mlist, stored)
    url = f"{settings.base_url}/unsubscribe/{make_unsubscribe_token(settings.secret, 0)}"
    preferences = f"{settings.base_url}/preferences/{make_preferences_token(settings.secret, 0)}"
    values = {
        fields.NAME: "",
        fields.EMAIL: SAMPLE_EMAIL,
        fields.UNSUBSCRIBE_URL: url,
        fields.PREFERENCES_URL: preferences,
    }
    assert preview.html == fill(stored.html, values, html=True)
    assert preview.text == fill(stored.text, values, html=False)
    assert not any(m in preview.html + preview.text for m in fields.ALL)
    assert preview.subject == stored.subject
    assert preview.envelope_sender == f"bounces@{settings.bounces_domain}"
    assert preview.html_bytes == len(preview.html.encode()) < GMAIL_CLIP
    assert not preview.clipped
    assert preview.message_bytes == len(preview.raw)
    # The sample link is a genuine token, for subscription 0: it unsubscribes no one.
    assert read_unsubscribe_token(settings.secret, url.rsplit("/", 1)[1]) == 0
    # What a client shows is what was previewed.
    msg = parse_message(preview.raw)
    assert part_content(msg, "html") == preview.html
    assert msg["To"].addresses[0].addr_spec == SAMPLE_EMAIL


def test_preview_of_a_digest_not_stored_yet(digest: tuple[MailingList, Digest]) -> None:
    mlist, stored = digest
    with session_scope() as session:
        found = session.scalar(select(MailingList).where(MailingList.id == mlist.id))
        assert found is not None
        composed = preview_digest(session, get_settings(), found, now=NOW)
    assert composed is not None
    preview = preview_message(get_settings(), mlist, composed)
    assert preview.subject == composed.subject
    assert fields.EMAIL in composed.html and SAMPLE_EMAIL in preview.html
    assert "You receive The Daily Brief at reader@example.com." in preview.text
    assert isinstance(parse_message(preview.raw), EmailMessage)


def test_preview_for_a_given_reader_escapes_their_values(
    digest: tuple[MailingList, Digest],
) -> None:
    mlist, stored = digest
    reader = Recipient(0, "o'brien&co@example.com", 'Ann "<b>"', 0)
    preview = preview_message(get_settings(), mlist, stored, reader=reader)
    assert "o&#x27;brien&amp;co@example.com" in preview.html
    assert "o'brien&co@example.com" in preview.text


def dns_of(keys: list[DkimKey]) -> Callable[..., bytes]:
    records = {f"{k.selector}._domainkey.{k.domain}.".encode(): k for k in keys}
    return lambda name, timeout=5: records[name].public_dns_record()


def test_test_message_is_the_digest_with_test_subject_signed_when_keys_are_set(
    digest: tuple[MailingList, Digest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlist, stored = digest
    unsigned, sender = testsend.test_message(get_settings(), mlist, stored, "tester@example.org")
    assert b"DKIM-Signature" not in unsigned
    # Its own return path: a bounce of a test send is recognised (and only counted).
    assert decode_system_verp(sender, get_settings()) == ("t", stored.id)

    rsa_path, ed_path = dkim_keys(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY_FILE", str(rsa_path))
    monkeypatch.setenv("NEWSLETTER_DKIM_ED25519_KEY_FILE", str(ed_path))
    get_settings.cache_clear()
    settings = get_settings()
    keys = keys_from_settings(settings)
    assert len(keys) == 2
    raw, sender = testsend.test_message(settings, mlist, stored, "tester@example.org")
    d = dkim.DKIM(raw)
    assert d.verify(0, dnsfunc=dns_of(keys)) and d.verify(1, dnsfunc=dns_of(keys))
    msg = parse_message(raw)
    assert msg["Subject"] == f"[TEST] {stored.subject}"
    assert msg["To"].addresses[0].addr_spec == "tester@example.org"
    assert decode_system_verp(sender, settings) == ("t", stored.id)
    url = f"{settings.base_url}/unsubscribe/{make_unsubscribe_token(settings.secret, 0)}"
    values = {
        fields.NAME: "",
        fields.EMAIL: "tester@example.org",
        fields.UNSUBSCRIBE_URL: url,
        fields.PREFERENCES_URL: f"{settings.base_url}/preferences/"
        + make_preferences_token(settings.secret, 0),
    }
    assert part_content(msg, "html") == fill(stored.html, values, html=True)
    assert part_content(msg, "plain") == fill(stored.text, values, html=False)
    again, _ = testsend.test_message(settings, mlist, stored, "tester@example.org")
    assert parse_message(again)["Message-ID"] != msg["Message-ID"]  # never collapsed
    # The preview signs with the configured keys too, and verifies.
    preview = preview_message(settings, mlist, stored)
    assert dkim.verify(preview.raw, dnsfunc=dns_of(keys))
    assert b"DKIM-Signature" not in preview_message(settings, mlist, stored, dkim_keys=()).raw
