"""Every mail the service sends is signed and carries a VERP return path: the confirmation
mail and the test send too. A bounce of a confirmation comes back to the bounce server,
is recognised and counted, and suppresses nobody (whoever typed the address into the
form need not own it)."""

from __future__ import annotations

import smtplib
from pathlib import Path

import dkim
import pytest
from sqlalchemy import select

from newsletter.bounces.report import bounce_report
from newsletter.bounces.server import start_bounce_server
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.mail.dkim import load_key
from newsletter.mail.verp import decode_system_verp, decode_verp
from newsletter.models import BounceEvent, Subscriber, Subscription, Suppression
from tests.conftest import reset_caches
from tests.send_support import dkim_keys, populate, send_env
from tests.services import AppProcesses, SmtpServer, free_port

BOUNCE_DOMAIN = "bounces.example.com"


def _dsn(return_path: str, recipient: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {return_path}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: user unknown\r\n"
        "--b--\r\n"
    ).encode()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_confirmation_and_test_send_are_signed_and_their_bounces_are_counted_only(
    backend: str,
    request: pytest.FixtureRequest,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = request.getfixturevalue("sqlite_db" if backend == "sqlite" else "postgres_db")
    digest_id = populate(["reader@example.org"])
    server = SmtpServer().start()
    rsa_path, ed_path = dkim_keys(tmp_path)
    env = send_env(data_dir, server.url, database, None) | {
        "NEWSLETTER_DKIM_DOMAIN": "example.com",
        "NEWSLETTER_DKIM_SELECTOR": "rsa1",
        "NEWSLETTER_DKIM_KEY_FILE": str(rsa_path),
        "NEWSLETTER_DKIM_ED25519_KEY_FILE": str(ed_path),
        "NEWSLETTER_DKIM_ED25519_SELECTOR": "ed1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    keys = {
        b"rsa1._domainkey.example.com.": load_key(rsa_path, "example.com", "rsa1"),
        b"ed1._domainkey.example.com.": load_key(ed_path, "example.com", "ed1"),
    }

    def txt(name: bytes, timeout: int = 5) -> bytes:
        return keys[name].public_dns_record()

    app = AppProcesses(env, tmp_path)
    bounce_port = free_port()
    bounces = start_bounce_server(get_settings(), "127.0.0.1", bounce_port)
    try:
        app.start_worker("--concurrency", "1")
        app.run("subscribers", "add", "typo@example.net", "--list", "news")
        (confirmation,) = server.wait_for(lambda m: len(m) >= 1, timeout=60)
        app.run("digest", "test", "--list", "news", "--to", "editor@example.com")
        test_mail = server.wait_for(lambda m: len(m) >= 2, timeout=60)[1]

        settings = get_settings()
        for mail in (confirmation, test_mail):
            signed = dkim.DKIM(mail.data)
            assert signed.verify(0, dnsfunc=txt) and signed.verify(1, dnsfunc=txt)
            assert mail.mail_from.endswith("@" + BOUNCE_DOMAIN)
            assert decode_verp(mail.mail_from, settings) is None  # not a delivery's
        with session_scope() as session:
            sub_id = session.scalar(
                select(Subscription.id)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .where(Subscriber.email == "typo@example.net")
            )
        assert decode_system_verp(confirmation.mail_from, settings) == ("c", sub_id)
        assert decode_system_verp(test_mail.mail_from, settings) == ("t", digest_id)

        # The confirmation bounces: the bounce server takes it and counts it, nobody is
        # suppressed, the request stays unconfirmed.
        with smtplib.SMTP("127.0.0.1", bounce_port) as smtp:
            refused = smtp.sendmail(
                "MAILER-DAEMON@mx.example.net",
                [confirmation.mail_from],
                _dsn(confirmation.mail_from, "typo@example.net"),
            )
        assert refused == {}
        forged = confirmation.mail_from.replace("-", "-0", 1)
        with (
            smtplib.SMTP("127.0.0.1", bounce_port) as smtp,
            pytest.raises(smtplib.SMTPRecipientsRefused),
        ):
            smtp.sendmail("MAILER-DAEMON@mx.example.net", [forged], b"Subject: x\r\n\r\nx\r\n")
        with session_scope() as session:
            events = session.execute(select(BounceEvent.kind, BounceEvent.source)).all()
            person = session.scalar(
                select(Subscriber).where(Subscriber.email == "typo@example.net")
            )
            assert person is not None and person.status == "active"
            sub = session.get(Subscription, sub_id)
            assert sub is not None and sub.status == "unconfirmed"
            assert session.scalar(select(Suppression.id)) is None
            report = bounce_report(session, limit=10, kind=None, days=1)
        assert events == [("hard", "smtp:confirmation")]
        assert report["totals"]["hard"] == 1
    finally:
        bounces.stop()
        app.stop()
        server.stop()
