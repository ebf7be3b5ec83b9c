"""One round trip per message: the next envelope rides with this message's content
(RFC 2920 PIPELINING), and nothing is delivered that the batch did not mean to send."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from newsletter.config import Settings, SmtpConfig
from newsletter.mail.fastpath import DigestTemplate, Recipient
from newsletter.mail.verp import decode_verp, verp_address
from newsletter.sending.transport import PooledTransport
from newsletter.subscriptions.tokens import make_unsubscribe_token, read_unsubscribe_token
from tests.send_support import HTML, TEXT
from tests.services import SmtpRules, SmtpServer


def pipelining_server(rules: SmtpRules | None = None) -> SmtpServer:
    server = SmtpServer(rules or SmtpRules(pipelining=True))
    assert server.rules.pipelining
    return server.start()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        NEWSLETTER_FROM="The Newsroom <news@example.com>",
        secret_key="s" * 32,
        base_url="https://news.example.com",
        bounce_domain="bounces.example.com",
        data_dir=tmp_path,
    )


def template_for(settings: Settings) -> DigestTemplate:
    # Lines that start with "." in the constant parts and in a substituted name.
    html = HTML + "<p>\n.hidden line\n..two dots\n.</p>\n"
    return DigestTemplate(
        settings=settings,
        digest_id=3,
        list_slug="news",
        list_name="The Newsroom Daily",
        subject="Digest",
        text=TEXT + "\n.leading dot\n",
        html=html,
    )


def unstuff(wire: bytes) -> bytes:
    assert wire.endswith(b"\r\n.\r\n")
    lines = wire[:-3].split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@pytest.mark.parametrize("name", ["Ann", ".dot first", "x" * 150 + ".", "Zoë"])
def test_wire_form_is_the_dot_stuffed_message(settings: Settings, name: str) -> None:
    template = template_for(settings)
    r = Recipient(5, "reader@example.org", name, 8)
    wire = template.render_wire(r, now=1_700_000_000.0)
    plain = template.render(r, now=1_700_000_000.0)
    assert unstuff(wire) == plain
    assert all(
        not line.startswith(b".") or line.startswith(b"..") for line in wire.split(b"\r\n")[:-2]
    )


def test_fast_tokens_are_the_reference_tokens(settings: Settings) -> None:
    template = template_for(settings)
    for i in (1, 9, 10, 12345, 2**31 + 7):
        url = template.unsubscribe_url(i)
        token = url.rsplit("/", 1)[1]
        assert token == make_unsubscribe_token(settings.secret, i)
        assert read_unsubscribe_token(settings.secret, token) == i
        sender = template.envelope_sender(i)
        assert sender == verp_address(i, settings)
        assert decode_verp(sender, settings) == i
    wire = template.render_wire(Recipient(7, "a@example.org", "A", 77))
    assert make_unsubscribe_token(settings.secret, 77).encode() in wire


def test_pipelined_batch_sends_each_accepted_message_once(settings: Settings) -> None:
    rules = SmtpRules(reject={"r2@example.org"}, defer={"r4@example.org"}, drop={"r6@example.org"})
    server = pipelining_server(rules)
    transport = PooledTransport(SmtpConfig(server.url))
    template = template_for(settings)
    people = [Recipient(i + 1, f"r{i}@example.org", f".Reader {i}", i + 1) for i in range(10)]
    outcomes = {}
    try:
        for i, r in enumerate(people):
            after = people[i + 1] if i + 1 < len(people) else None
            then = (template.envelope_sender(after.delivery_id), after.email) if after else None
            attempt = transport.deliver(
                template.render_wire(r), template.envelope_sender(r.delivery_id), r.email, then
            )
            outcomes[r.email] = attempt.status
        transport.abandon()
        assert transport.connection.has_extn("pipelining")
    finally:
        transport.close()
        server.stop()
    assert outcomes["r2@example.org"] == "bounced"
    assert outcomes["r4@example.org"] == "deferred"
    assert outcomes["r6@example.org"] == "deferred"
    sent = sorted(e for e, status in outcomes.items() if status == "sent")
    assert sent == sorted(f"r{i}@example.org" for i in (0, 1, 3, 5, 7, 8, 9))
    got = [rcpt for m in server.messages for rcpt in m.rcpt_tos]
    assert sorted(got) == sent  # each once; nothing for the refused ones
    for m in server.messages:
        parsed = message_from_bytes(m.data, policy=default)
        assert parsed.get_body(("plain",)).get_content().startswith("Hello .Reader")
        html = parsed.get_body(("html",)).get_content().replace("\r\n", "\n")
        assert "\n.hidden line\n..two dots\n.</p>" in html
        assert m.mail_from == verp_address(int(m.rcpt_tos[0][1]) + 1, settings)


def test_an_abandoned_primed_envelope_delivers_nothing(settings: Settings) -> None:
    server = pipelining_server()
    transport = PooledTransport(SmtpConfig(server.url))
    template = template_for(settings)
    a, b, c = (Recipient(i, f"p{i}@example.org", "", i) for i in (1, 2, 3))
    try:
        first = transport.deliver(
            template.render_wire(a),
            "bounces@example.com",
            a.email,
            ("bounces@example.com", b.email),
        )
        transport.abandon()  # b is not sent after all (paused, cancelled, backed off)
        third = transport.deliver(template.render_wire(c), "bounces@example.com", c.email)
        # Primed for one recipient but asked for another: the primed one is dropped too.
        transport.deliver(
            template.render_wire(a),
            "bounces@example.com",
            a.email,
            ("bounces@example.com", b.email),
        )
        fourth = transport.deliver(template.render_wire(c), "bounces@example.com", c.email)
    finally:
        transport.close()
        server.stop()
    assert (first.status, third.status, fourth.status) == ("sent", "sent", "sent")
    got = [rcpt for m in server.messages for rcpt in m.rcpt_tos]
    assert sorted(got) == ["p1@example.org", "p1@example.org", "p3@example.org", "p3@example.org"]
    assert all(len(m.data) > 1000 for m in server.messages)  # no empty message slipped out
