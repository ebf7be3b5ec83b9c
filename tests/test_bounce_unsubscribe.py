"""The ``mailto:`` in every digest's List-Unsubscribe header, over real SMTP to
`newsletter bounce-server`: a mail to it unsubscribes that reader from that list (250,
committed before the answer) whatever it says; a forged or altered address is refused at
RCPT with 550 5.1.1, counted, and changes nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default

import pytest
from sqlalchemy import select, text

from newsletter.bounces.report import bounce_report
from newsletter.bounces.server import start_bounce_server
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.mail.fastpath import DigestTemplate, Recipient
from newsletter.models import MailingList, Subscriber, Subscription
from newsletter.subscriptions.tokens import make_unsubscribe_token
from tests.bounce_support import (
    BOUNCE_DOMAIN,
    bounce_settings_fixture,  # noqa: F401 - the bounce_settings fixture
    send_digest,
    subscriber_state,
)
from tests.services import free_port

READER = "ana@example.org"


@pytest.fixture
def server(bounce_settings: Settings) -> Iterator[tuple[str, int]]:
    port = free_port()
    controller = start_bounce_server(bounce_settings, "127.0.0.1", port)
    yield "127.0.0.1", port
    controller.stop()


def subscription_id(email: str, slug: str) -> int:
    with session_scope() as session:
        found = session.scalar(
            select(Subscription.id)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscriber.email == email, MailingList.slug == slug)
        )
        assert found is not None
        return found


def mailto_of_digest(settings: Settings, email: str, slug: str) -> tuple[str, str]:
    """(address, subject) of the List-Unsubscribe mailto in the digest this reader gets,
    as a mail client reads it from the header."""
    template = DigestTemplate(
        settings=settings,
        digest_id=1,
        list_slug=slug,
        list_name=slug.title(),
        subject="Today's digest",
        text="Hello\n",
        html="<html><body><p>Hello</p></body></html>",
    )
    rendered = template.render(
        Recipient(
            delivery_id=1, email=email, name="Ana", subscription_id=subscription_id(email, slug)
        )
    )
    header = str(message_from_bytes(rendered, policy=default)["List-Unsubscribe"])
    found = re.search(r"<mailto:([^?>]+)\?subject=([^>]*)>", header)
    assert found is not None, header
    return found.group(1), found.group(2)


def mail(
    server: tuple[str, int], rcpt: str, body: bytes, *, sender: str = READER
) -> tuple[int, bytes]:
    """A reader's mail client sending to ``rcpt``: the first refusal's code, or DATA's."""
    with smtplib.SMTP(*server, timeout=30) as smtp:
        smtp.ehlo("mail.example.org")
        assert smtp.mail(sender)[0] == 250
        code, reply = smtp.rcpt(rcpt)
        if code != 250:
            return code, reply
        return smtp.data(re.sub(rb"\r?\n", b"\r\n", body))


def plain(rcpt: str, subject: str, body: str = "") -> bytes:
    return (
        f"From: Ana <{READER}>\nTo: <{rcpt}>\nSubject: {subject}\n"
        "Message-ID: <u1@mail.example.org>\nMIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\n\n{body}\n"
    ).encode()


def rejected(reason: str) -> int:
    with session_scope() as session:
        rows = bounce_report(session)["rejected"]
    return sum(r["count"] for r in rows if r["source"] == "smtp" and r["reason"] == reason)


def test_the_digest_mailto_unsubscribes_that_reader_from_that_list(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    send_digest([READER, "ben@example.org"], slug="news")
    send_digest([READER], slug="sport")
    rcpt, subject = mailto_of_digest(bounce_settings, READER, "news")
    assert rcpt.startswith("unsubscribe+") and rcpt.endswith("@" + BOUNCE_DOMAIN)

    code, reply = mail(server, rcpt, plain(rcpt, subject))
    # The 250 comes after the commit: a fresh session sees the change at once.
    assert code == 250, reply
    status, _score, lists = subscriber_state(READER)
    assert lists == {"news": "unsubscribed", "sport": "confirmed"}
    assert status == "active"  # leaving a list is not a bounce: no suppression
    assert subscriber_state("ben@example.org")[2] == {"news": "confirmed"}
    with session_scope() as session:
        sub = session.get(Subscription, subscription_id(READER, "news"))
        assert sub is not None and sub.unsubscribed_at is not None

    # Sent again (a second click, an MTA retry): still 250, nothing else changes.
    assert mail(server, rcpt, plain(rcpt, subject))[0] == 250
    assert subscriber_state(READER)[2] == {"news": "unsubscribed", "sport": "confirmed"}


ODD = {
    "empty": b"",
    "says-subscribe": plain("x", "subscribe me again please", "Keep sending, I love it!"),
    "no-headers-at-all": b"\n",
    "html-only-8bit": (
        "Subject: =?utf-8?q?D=C3=A9sabonnement?=\nMIME-Version: 1.0\n"
        "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        "<p>Je ne veux plus recevoir ce bulletin. Merci — Ana</p>\n"
    ).encode(),
    "looks-like-a-bounce": (
        b"From: MAILER-DAEMON@mail.example.org\nSubject: Undelivered Mail Returned\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nUser unknown\n--b\n"
        b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mail.example.org\n\n"
        b"Final-Recipient: rfc822; ana@example.org\nAction: failed\nStatus: 5.1.1\n--b--\n"
    ),
}


@pytest.mark.parametrize("body", list(ODD), ids=list(ODD))
def test_whatever_the_mail_says_it_unsubscribes(
    server: tuple[str, int], bounce_settings: Settings, body: str
) -> None:
    send_digest([READER], slug="news")
    rcpt, _subject = mailto_of_digest(bounce_settings, READER, "news")
    code, reply = mail(server, rcpt, ODD[body], sender="")
    assert code == 250, reply
    assert subscriber_state(READER)[:3] == ("active", 0, {"news": "unsubscribed"})


def test_the_prefix_and_domain_are_matched_without_case(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    send_digest([READER], slug="news")
    rcpt, _subject = mailto_of_digest(bounce_settings, READER, "news")
    local, _at, domain = rcpt.partition("@")
    shouted = "UNSUBSCRIBE" + local[len("unsubscribe") :] + "@" + domain.upper()
    assert mail(server, shouted, plain(shouted, "unsubscribe"))[0] == 250
    assert subscriber_state(READER)[2] == {"news": "unsubscribed"}


def _forgeries(settings: Settings, sid: int) -> dict[str, str]:
    genuine = make_unsubscribe_token(settings.secret, sid)
    payload, _dot, mac = genuine.rpartition(".")
    other = make_unsubscribe_token(settings.secret, sid + 1).rpartition(".")[0]
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    return {
        "altered-signature": f"unsubscribe+{payload}.{flipped}",
        "other-reader-same-signature": f"unsubscribe+{other}.{mac}",
        "signed-with-another-key": "unsubscribe+" + make_unsubscribe_token("not-our-key", sid),
        # A mail system that folded the local part's case spoils the base64 signature:
        # refused like a forgery, nothing changes (the reader still has the link).
        "case-folded": f"unsubscribe+{genuine.lower()}",
        "truncated": f"unsubscribe+{genuine[:-4]}",
        "empty": "unsubscribe+",
        "no-token": "unsubscribe",
    }


FORGERIES = [
    "altered-signature",
    "other-reader-same-signature",
    "signed-with-another-key",
    "case-folded",
    "truncated",
    "empty",
    "no-token",
]


@pytest.mark.parametrize("kind", FORGERIES)
def test_a_forged_or_altered_address_is_refused_at_rcpt_and_changes_nothing(
    server: tuple[str, int], bounce_settings: Settings, kind: str
) -> None:
    send_digest([READER, "ben@example.org"], slug="news")
    sid = subscription_id(READER, "news")
    local = _forgeries(bounce_settings, sid)[kind]
    rcpt = f"{local}@{BOUNCE_DOMAIN}"
    code, reply = mail(server, rcpt, plain(rcpt, "unsubscribe"))
    assert code == 550 and b"5.1.1" in reply, (code, reply)
    reason = "unknown-address" if kind == "no-token" else "forged-unsubscribe-token"
    assert rejected(reason) == 1
    assert subscriber_state(READER)[2] == {"news": "confirmed"}
    assert subscriber_state("ben@example.org")[2] == {"news": "confirmed"}


def test_a_genuine_token_for_another_domain_is_not_ours(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    send_digest([READER], slug="news")
    rcpt, _subject = mailto_of_digest(bounce_settings, READER, "news")
    elsewhere = rcpt.partition("@")[0] + "@elsewhere.example"
    code, _reply = mail(server, elsewhere, plain(elsewhere, "unsubscribe"))
    assert code == 550
    assert rejected("unknown-address") == 1
    assert subscriber_state(READER)[2] == {"news": "confirmed"}


def test_a_database_failure_answers_451_and_the_retry_unsubscribes(
    server: tuple[str, int], bounce_settings: Settings
) -> None:
    send_digest([READER], slug="news")
    rcpt, subject = mailto_of_digest(bounce_settings, READER, "news")
    with session_scope() as session:
        session.execute(text("ALTER TABLE subscriptions RENAME TO subscriptions_away"))
    try:
        code, reply = mail(server, rcpt, plain(rcpt, subject))
    finally:
        with session_scope() as session:
            session.execute(text("ALTER TABLE subscriptions_away RENAME TO subscriptions"))
    assert code == 451 and b"4.3.0" in reply
    assert subscriber_state(READER)[2] == {"news": "confirmed"}
    assert mail(server, rcpt, plain(rcpt, subject))[0] == 250
    assert subscriber_state(READER)[2] == {"news": "unsubscribed"}
