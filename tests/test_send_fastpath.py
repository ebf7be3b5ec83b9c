"""The fast path's bytes mean the same as the reference builder's message, and verify."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

import dkim
import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from newsletter.config import Settings
from newsletter.digests import fields as ph
from newsletter.mail import fastpath, smtp
from newsletter.mail.dkim import DkimKey, load_key
from newsletter.mail.fastpath import DigestTemplate, Recipient, UnsubscribeTokens
from newsletter.mail.message import address, build_message
from newsletter.mail.verp import decode_verp, verp_address
from newsletter.subscriptions.tokens import (
    TokenInvalid,
    make_preferences_token,
    make_unsubscribe_token,
    read_preferences_token,
    read_unsubscribe_token,
)
from tests.reference import fill
from tests.send_support import HTML, TEXT, dkim_keys


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        NEWSLETTER_FROM="Nëwsroom Désk <news@example.com>",
        secret_key="k" * 32,
        base_url="https://news.example.com",
        bounce_domain="bounces.example.com",
        data_dir=tmp_path,
    )


NAMES = ["Ann", 'Bob "the builder" <b>', "Zoë  Ærøskøbing", "", "x" * 150, ".dot first"]


@pytest.mark.parametrize("name", NAMES)
def test_fast_path_parses_to_the_reference_content(settings: Settings, name: str) -> None:
    html = HTML + ("<p>" + "long line with = signs and tabs\t" * 40 + "</p>\n.\n")
    template = DigestTemplate(
        settings=settings,
        digest_id=7,
        list_slug="news",
        list_name="The Newsroom Daily",
        subject="Today’s digest: 12 stories",
        text=TEXT,
        html=html,
    )
    r = Recipient(delivery_id=42, email="reader@example.org", name=name, subscription_id=9)
    fast = message_from_bytes(template.render(r), policy=default)
    values = {
        ph.NAME: name,
        ph.EMAIL: r.email,
        ph.UNSUBSCRIBE_URL: template.unsubscribe_url(9),
        ph.PREFERENCES_URL: template.preferences_url(9),
    }
    # Every digest links to the preference centre: the fast path adds the link where a
    # template has none, so the reference gets the same footer.
    text, html = fastpath.ensure_preferences(TEXT, html)
    ref = build_message(
        sender=settings.sender,
        to=address(r.email, name),
        subject="Today’s digest: 12 stories",
        text=fill(text, values, html=False),
        html=fill(html, values, html=True),
    )
    ref = message_from_bytes(ref.as_bytes(), policy=default)
    for kind in ("plain", "html"):
        got = fast.get_body((kind,)).get_content().replace("\r\n", "\n").rstrip()
        want = ref.get_body((kind,)).get_content().replace("\r\n", "\n").rstrip()
        assert got == want
    assert fast["Subject"] == ref["Subject"]
    assert fast["From"] == ref["From"]
    assert fast["To"].addresses[0].addr_spec == "reader@example.org"
    assert all(len(line) <= 998 for line in template.render(r).split(b"\r\n"))
    body_lines = template.render(r).split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert all(len(line) <= 76 for line in body_lines)


def signing_keys(tmp_path: Path) -> tuple[list[DkimKey], dict[bytes, DkimKey]]:
    """An RSA and an Ed25519 key for example.com, and where dkimpy finds each."""
    rsa_path, ed_path = dkim_keys(tmp_path)
    keys = [load_key(rsa_path, "example.com", "s1"), load_key(ed_path, "example.com", "s2")]
    return keys, {b"s1._domainkey.example.com.": keys[0], b"s2._domainkey.example.com.": keys[1]}


def test_both_signatures_verify_with_dkimpy(settings: Settings, tmp_path: Path) -> None:
    keys, records = signing_keys(tmp_path)
    template = DigestTemplate(
        settings=settings,
        digest_id=1,
        list_slug="news",
        list_name="The Newsroom Daily",
        subject="Subject",
        text=TEXT,
        html=HTML,
        dkim_keys=keys,
    )
    for i, name in enumerate(NAMES):
        raw = template.render(Recipient(i + 1, f"r{i}@example.org", name, i + 1))
        d = dkim.DKIM(raw)
        assert d.verify(0, dnsfunc=lambda n, timeout=5: records[n].public_dns_record())
        assert d.verify(1, dnsfunc=lambda n, timeout=5: records[n].public_dns_record())
        # Any change to the body breaks it.
        assert not dkim.verify(
            raw.replace(b"Story 3", b"Story 4"),
            dnsfunc=lambda n, timeout=5: records[n].public_dns_record(),
        )


def test_verp_maps_back_and_refuses_forgeries(settings: Settings) -> None:
    addr = verp_address(12345, settings)
    assert addr.startswith("bounces+12345-") and addr.endswith("@bounces.example.com")
    assert decode_verp(addr, settings) == 12345
    assert decode_verp(addr.upper(), settings) == 12345
    assert decode_verp(addr.replace("12345", "12346"), settings) is None
    assert decode_verp("bounces+12345-000000000000@bounces.example.com", settings) is None
    assert decode_verp(addr.replace("bounces.example.com", "evil.com"), settings) is None
    assert decode_verp("someone@example.com", settings) is None


IDS = [0, 1, 9, 10, 99, 12345, 2**31 + 7, 10**11 - 1, 10**11, 10**12 - 1, 10**18 - 1]


@pytest.mark.parametrize("secret", ["k" * 32, "ünïcode secret", "s"])
def test_the_fast_paths_tokens_are_the_unsubscribe_tokens_and_read_back(secret: str) -> None:
    tokens = UnsubscribeTokens(secret)
    for i in [*IDS, *range(0, 5000, 7), *(int(d * n) for d in "123456789" for n in range(1, 19))]:
        token = tokens(i)
        assert token == make_unsubscribe_token(secret, i)
        assert read_unsubscribe_token(secret, token) == i
        preferences = fastpath.PreferencesTokens(secret)(i)
        assert preferences == make_preferences_token(secret, i)
        assert read_preferences_token(secret, preferences) == i


def test_unsubscribe_links_in_mail_already_sent_keep_working() -> None:
    """Tokens of the older form (itsdangerous, salt "unsubscribe") are still read."""
    from itsdangerous import URLSafeSerializer

    old = URLSafeSerializer("k" * 32, salt="unsubscribe").dumps(4242)
    assert read_unsubscribe_token("k" * 32, old) == 4242
    with pytest.raises(TokenInvalid):
        read_unsubscribe_token("another secret", old)


def test_a_forged_or_altered_unsubscribe_token_is_refused() -> None:
    genuine = make_unsubscribe_token("k" * 32, 77)
    prefix, ident, mac = genuine.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for forged in (
        f"{prefix}.78.{mac}",  # another reader's id under this MAC
        f"{prefix}.{ident}.{flipped}",
        f"{prefix}.{ident}.{mac.lower()}",  # case-folded on the way (a mail system)
        make_unsubscribe_token("not our key", 77),
        f"{prefix}.-1.{mac}",
        f"{prefix}.077.{mac}",
        "",
        "u2..",
    ):
        with pytest.raises(TokenInvalid):
            read_unsubscribe_token("k" * 32, forged)
    with pytest.raises(ValueError):
        make_unsubscribe_token("k" * 32, -1)


def test_dot_stuffing_is_smtp_framing() -> None:
    assert fastpath.dot_stuff is smtp.dot_stuff  # re-exported for sending/transport.py
    assert smtp.dot_stuff(b".a\r\nb\r\n..c\r\n.\r\n") == b"..a\r\nb\r\n...c\r\n..\r\n"
    assert smtp.dot_stuff(b"plain\r\nlines\r\n") == b"plain\r\nlines\r\n"


READERS = [
    ("reader@example.org", "Ann"),
    ("o'brien&co@example.com", 'Bob "the builder" <b>'),
    ("zoe@example.org", "Zoë  Ærøskøbing"),
    ("plain@example.org", ""),
    ("x" * 60 + "@" + "y" * 60 + ".example.org", "x" * 150),
    (".dot@example.org", ".dot first"),
    ("tab@example.org", "Tab\there, comma"),
]


@pytest.mark.parametrize(("email", "name"), READERS)
def test_the_unsigned_fast_path_makes_the_same_bytes_as_the_general_one(
    settings: Settings, email: str, name: str
) -> None:
    """The per-reader path without DKIM is written for speed; the general one (which
    signs) is the reference: same bytes for awkward names and addresses, wire and not."""
    template = DigestTemplate(
        settings=settings,
        digest_id=7,
        list_slug="news",
        list_name="The Newsroom Daily",
        subject="Today’s digest",
        text=TEXT + "\n.\n",
        html=HTML,
    )
    r = Recipient(delivery_id=42, email=email, name=name, subscription_id=9)
    for wire in (False, True):
        fast = template._unsigned(r, 1_700_000_000.0, None, wire=wire)
        general = template._build(r, 1_700_000_000.0, None, wire=wire)
        assert fast == general
    assert template.render(r, now=1_700_000_000.0) == template._build(
        r, 1_700_000_000.0, None, wire=False
    )


@pytest.mark.parametrize(("email", "name"), READERS)
def test_the_signed_fast_path_makes_the_same_bytes_as_the_general_one(
    settings: Settings, tmp_path: Path, email: str, name: str
) -> None:
    """Signing from the fast path's pieces (headers canonicalised once per digest, the
    body hashed from the reader's values) gives `_build`'s bytes, signatures included
    (RSA PKCS#1 v1.5 and Ed25519 are deterministic), wire and not, and dkimpy verifies."""
    keys, records = signing_keys(tmp_path)
    # The name also starts a line: ".dot first" is dot-stuffed there on the wire.
    lines = TEXT + f"\n{ph.NAME}\n.\n"
    for text, html in ((lines, HTML), (ATTRIBUTE_TEXT, ATTRIBUTE_HTML)):
        template = DigestTemplate(
            settings=settings,
            digest_id=7,
            list_slug="news",
            list_name="The  Newsroom\tDaily",
            subject="Today’s digest, with a subject long enough to be folded by the encoder",
            text=text,
            html=html,
            dkim_keys=keys,
        )
        r = Recipient(42, email, name, 9, {"city": ".Kyiv <Podil>", "zone": 3})
        for now in (1_700_000_000.0, 1_700_000_001.5):
            for wire in (False, True):
                fast = template._signed(r, now, None, wire=wire)
                assert fast == template._build(r, now, None, wire=wire)
        raw = template.render(r)
        d = dkim.DKIM(raw)
        for i in range(2):
            assert d.verify(i, dnsfunc=lambda n, timeout=5: records[n].public_dns_record())
        assert template.render_wire(r).endswith(b"\r\n.\r\n")


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
@settings_(max_examples=400, deadline=None)
def test_a_value_is_quoted_as_the_general_token_path_quotes_it(value: str) -> None:
    """qp_value's C shortcut (binascii.b2a_qp) for short values gives the bytes of the
    general per-byte path: every byte but the safe ones as =XX, soft breaks at 75."""
    from newsletter.mail.fastpath import _qp_tokens, _wrap, qp_value

    raw = value.encode()
    chunks = [c.removesuffix(b"=") for c in _wrap(_qp_tokens(raw, encode_ws=True, last_open=True))]
    assert qp_value(value) == b"".join(c + b"=\r\n" for c in chunks)


ATTRIBUTE_HTML = HTML.replace(
    "</body>",
    f"<p>Weather in {ph.attribute('city', 'your city')}, zone {ph.attribute('zone')}.</p>"
    f'<p><a href="https://news.example.com/c/{ph.READER}/1.1.x">story</a> '
    f'<a href="{ph.PREFERENCES_URL}">Manage your subscription</a></p></body>',
)
ATTRIBUTE_TEXT = (
    TEXT
    + f"Weather in {ph.attribute('city', 'your city')}, zone {ph.attribute('zone')}.\n"
    + f"Manage: {ph.PREFERENCES_URL}\nClick: https://news.example.com/c/{ph.READER}/1.1.x\n"
)
ATTRIBUTES: list[dict[str, object] | None] = [
    {"city": 'Kyiv <Podil> & "Co" = café', "zone": 3},
    {"city": "", "zone": True},
    None,
    {"city": "x " * 120},
    {"city": ".dot first\tand\ttabs"},
]


@pytest.mark.parametrize("attributes", ATTRIBUTES)
def test_reader_markers_parse_to_the_reference_and_verify(
    settings: Settings, tmp_path: Path, attributes: dict[str, object] | None
) -> None:
    """Attributes (with a fallback), the preference URL and the reader code: the same
    content as the reference filling, the same bytes unsigned and general, DKIM-valid."""
    from newsletter.engagement.codes import ReaderCodes, read_reader_code

    rsa_path, _ = dkim_keys(tmp_path)
    key = load_key(rsa_path, "example.com", "s1")
    made = {
        signed: DigestTemplate(
            settings=settings,
            digest_id=7,
            list_slug="news",
            list_name="The Newsroom Daily",
            subject="Subject",
            text=ATTRIBUTE_TEXT,
            html=ATTRIBUTE_HTML,
            dkim_keys=[key] if signed else [],
        )
        for signed in (False, True)
    }
    template = made[False]
    assert template.uses_attributes and [n for n, _ in template.attributes] == ["city", "zone"]
    r = Recipient(42, "reader@example.org", "Ann", 9, attributes)
    values = {
        ph.NAME: "Ann",
        ph.EMAIL: r.email,
        ph.UNSUBSCRIBE_URL: template.unsubscribe_url(9),
        ph.PREFERENCES_URL: template.preferences_url(9),
        ph.READER: ReaderCodes(settings.secret)(42),
    }
    fast = message_from_bytes(template.render(r), policy=default)
    for kind, part in (("plain", ATTRIBUTE_TEXT), ("html", ATTRIBUTE_HTML)):
        got = fast.get_body((kind,)).get_content().replace("\r\n", "\n").rstrip()
        want = fill(part, values, html=kind == "html", attributes=attributes).rstrip()
        assert got == want
        assert "%%NL_" not in got
    text = fast.get_body(("plain",)).get_content()
    if not (attributes or {}).get("city"):
        assert "Weather in your city" in text
    token = template.preferences_url(9).rsplit("/", 1)[1]
    assert read_preferences_token(settings.secret, token) == 9
    assert read_reader_code(settings.secret, values[ph.READER]) == 42
    for wire in (False, True):
        assert template._unsigned(r, 1_700_000_000.0, None, wire=wire) == template._build(
            r, 1_700_000_000.0, None, wire=wire
        )
    raw = made[True].render(r)
    assert dkim.verify(raw, dnsfunc=lambda n, timeout=5: key.public_dns_record())
    assert all(len(line) <= 76 for line in raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n"))


def test_a_digest_without_attributes_reads_none(settings: Settings) -> None:
    template = DigestTemplate(
        settings=settings,
        digest_id=7,
        list_slug="news",
        list_name="The Newsroom Daily",
        subject="Subject",
        text=TEXT,
        html=HTML,
    )
    assert not template.uses_attributes
    # The preference link is added to a digest whose template has none, in both parts.
    message = message_from_bytes(template.render(Recipient(1, "a@example.org", "A", 5)))
    for kind in ("plain", "html"):
        part = next(p for p in message.walk() if p.get_content_type() == f"text/{kind}")
        assert template.preferences_url(5) in part.get_payload(decode=True).decode()


@pytest.mark.parametrize(
    "base_url",
    [
        "https://news.example.com",
        "https://newsletters.a-rather-long-host-name.example.org/and/a/path",
        "https://news.example.com/q?a=1&b=2",  # not plain: the general per-value way
    ],
)
@pytest.mark.parametrize("subscription_id", [0, 9, 10**9 + 7, 10**17 + 3])
def test_the_per_reader_urls_are_the_general_paths_whatever_their_length(
    tmp_path: Path, base_url: str, subscription_id: int
) -> None:
    """The short way for plain URLs gives the bytes of the general one, wire and not,
    for URLs on one QP line and longer, with the name, attributes and reader code."""
    settings = Settings(
        NEWSLETTER_FROM="News <news@example.com>",
        secret_key="k" * 32,
        base_url=base_url,
        bounce_domain="bounces.example.com",
        data_dir=tmp_path,
    )
    for text, html in ((TEXT, HTML), (ATTRIBUTE_TEXT, ATTRIBUTE_HTML)):
        template = DigestTemplate(
            settings=settings,
            digest_id=7,
            list_slug="news",
            list_name="The Newsroom Daily",
            subject="Today",
            text=text,
            html=html,
        )
        r = Recipient(42, "a@example.org", ".Ann & co", subscription_id, {"city": "Ky<iv"})
        for wire in (False, True):
            assert template._unsigned(r, 1_700_000_000.0, None, wire=wire) == template._build(
                r, 1_700_000_000.0, None, wire=wire
            )
        got = message_from_bytes(template.render(r), policy=default)
        plain = got.get_body(("plain",)).get_content()
        assert template.preferences_url(subscription_id) in plain
        assert template.unsubscribe_url(subscription_id) in plain
