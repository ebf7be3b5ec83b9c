"""`newsletter digest preflight` tells the operator what would go wrong before a send, and
`digest send` refuses to send what it blocks (unless --skip-preflight).

DNS is answered by a real DNS server the test starts on a free loopback port (dnslib),
never the internet; the CLI runs as an operator runs it, against a real database; the
send that goes through reaches a real SMTP server through a real worker.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import DNSLogger, DNSServer
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.digests import fields as ph
from newsletter.models import Digest
from tests.conftest import reset_caches
from tests.send_support import dkim_keys, populate, send_env
from tests.services import AppProcesses, SmtpServer

TOKEN = "admin-token-for-the-tests-0123456789"
SPF = "v=spf1 ip4:192.0.2.10 -all"
DMARC = "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Zone:
    """A DNS server's answers: TXT records by name; any other name is NXDOMAIN."""

    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        self.asked.append(name)
        records = self.txt.get(name)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for record in records:
                data = record.encode()
                chunks = [data[i : i + 255] for i in range(0, len(data), 255)]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        return reply


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    """A real DNS server (UDP, loopback, a thread) and its host:port."""
    answers = Zone()
    port = _udp_port()
    server = DNSServer(
        answers, address="127.0.0.1", port=port, logger=DNSLogger(logf=lambda _: None)
    )
    server.start_thread()
    try:
        yield answers, f"127.0.0.1:{port}"
    finally:
        server.stop()


def _published(path: Path) -> str:
    """The DKIM record for a private key file, computed here from the key itself."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        der = pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "keys"
    folder.mkdir()
    return dkim_keys(folder)


def _good_zone(zone: Zone, keys: tuple[Path, Path]) -> None:
    zone.txt["example.com"] = [SPF, "google-site-verification=abc"]
    zone.txt["bounces.example.com"] = [SPF]
    zone.txt["s1._domainkey.example.com"] = [_published(keys[0])]
    zone.txt["ed1._domainkey.example.com"] = [_published(keys[1])]
    zone.txt["_dmarc.example.com"] = [DMARC]


def _env(
    data_dir: Path,
    database: str,
    dns: str,
    keys: tuple[Path, Path],
    smtp: str = "smtp://127.0.0.1:9",
) -> dict[str, str]:
    return send_env(data_dir, smtp, database, None) | {
        "NEWSLETTER_DNS_SERVER": dns,
        "NEWSLETTER_DKIM_KEY_FILE": str(keys[0]),
        "NEWSLETTER_DKIM_SELECTOR": "s1",
        "NEWSLETTER_DKIM_ED25519_KEY_FILE": str(keys[1]),
        "NEWSLETTER_DKIM_ED25519_SELECTOR": "ed1",
        "NEWSLETTER_ADMIN_TOKEN": TOKEN,
    }


def _preflight(app: AppProcesses) -> tuple[int, dict[str, Any]]:
    done = app.run("digest", "preflight", "--list", "news", "--json", check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def _by_check(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["check"]: f for f in report["findings"]}


def _set_draft_html(html: str) -> None:
    with session_scope() as session:
        digest = session.scalars(select(Digest)).one()
        digest.html = html


def test_all_good_passes_every_check_and_json_has_the_documented_shape(
    sqlite_db: str, data_dir: Path, tmp_path: Path, zone: tuple[Zone, str], keys: tuple[Path, Path]
) -> None:
    answers, dns = zone
    _good_zone(answers, keys)
    digest_id = populate(["reader@example.org"])
    app = AppProcesses(_env(data_dir, sqlite_db, dns, keys), tmp_path)

    code, report = _preflight(app)

    assert code == 0
    assert set(report) >= {"list", "ok", "blocked", "findings"}
    assert report["list"] == "news" and report["ok"] is True and report["blocked"] is False
    assert report["digest"] == digest_id
    for finding in report["findings"]:
        assert set(finding) >= {"check", "ok", "detail", "severity", "blocking"}
        assert finding["ok"] is True, finding
        assert finding["severity"] == "ok" and finding["blocking"] is False
    found = _by_check(report)
    assert {"spf", "spf:bounce", "dkim:s1", "dkim:ed1", "dmarc", "alignment", "list-unsubscribe",
            "unsubscribe-link", "size", "links", "spamassassin"} <= set(found)  # fmt: skip
    assert SPF in found["spf"]["detail"]
    assert "p=reject" in found["dmarc"]["detail"]
    assert "s1._domainkey.example.com" in found["dkim:s1"]["detail"]
    # The DNS server was really asked, and for the names the checks are about.
    assert {"example.com", "s1._domainkey.example.com", "_dmarc.example.com"} <= set(answers.asked)

    text = app.run("digest", "preflight", "--list", "news")
    assert "preflight of news: 0 blocking, 0 warning(s)" in text.stdout
    assert "dkim:ed1" in text.stdout


def test_a_published_dkim_key_that_is_not_the_configured_one_blocks_and_says_what_to_publish(
    sqlite_db: str, data_dir: Path, tmp_path: Path, zone: tuple[Zone, str], keys: tuple[Path, Path]
) -> None:
    answers, dns = zone
    _good_zone(answers, keys)
    other = tmp_path / "other"
    other.mkdir()
    answers.txt["s1._domainkey.example.com"] = [_published(dkim_keys(other)[0])]
    populate(["reader@example.org"])
    app = AppProcesses(_env(data_dir, sqlite_db, dns, keys), tmp_path)

    code, report = _preflight(app)

    assert code == 1 and report["blocked"] is True
    found = _by_check(report)
    assert found["dkim:s1"]["severity"] == "blocking"
    detail = found["dkim:s1"]["detail"]
    assert "selector s1" in detail
    assert f'publish TXT s1._domainkey.example.com "{_published(keys[0])}"' in detail
    assert found["dkim:ed1"]["ok"] is True  # the other key is published right

    text = app.run("digest", "preflight", "--list", "news", check=False)
    assert text.returncode == 1
    assert "BLOCKING dkim:s1" in " ".join(text.stdout.split())


def test_a_missing_dmarc_record_warns_with_the_record_to_add(
    sqlite_db: str, data_dir: Path, tmp_path: Path, zone: tuple[Zone, str], keys: tuple[Path, Path]
) -> None:
    answers, dns = zone
    _good_zone(answers, keys)
    del answers.txt["_dmarc.example.com"]
    populate(["reader@example.org"])
    app = AppProcesses(_env(data_dir, sqlite_db, dns, keys), tmp_path)

    code, report = _preflight(app)

    assert code == 0 and report["blocked"] is False
    dmarc = _by_check(report)["dmarc"]
    assert dmarc["ok"] is False and dmarc["severity"] == "warning"
    assert 'add TXT _dmarc.example.com "v=DMARC1; p=none;' in dmarc["detail"]


def test_two_spf_records_are_an_error(
    sqlite_db: str, data_dir: Path, tmp_path: Path, zone: tuple[Zone, str], keys: tuple[Path, Path]
) -> None:
    answers, dns = zone
    _good_zone(answers, keys)
    answers.txt["example.com"] = [SPF, "v=spf1 include:_spf.mailer.example.net ~all"]
    populate(["reader@example.org"])
    app = AppProcesses(_env(data_dir, sqlite_db, dns, keys), tmp_path)

    code, report = _preflight(app)

    assert code == 1
    spf = _by_check(report)["spf"]
    assert spf["severity"] == "blocking"
    assert "2 SPF records at example.com" in spf["detail"] and "merge them" in spf["detail"]


def test_a_dns_server_that_does_not_answer_is_a_clear_finding_not_a_traceback(
    sqlite_db: str, data_dir: Path, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # takes queries, never answers
        silent.bind(("127.0.0.1", 0))
        dns = f"127.0.0.1:{silent.getsockname()[1]}"
        populate(["reader@example.org"])
        app = AppProcesses(_env(data_dir, sqlite_db, dns, keys), tmp_path)

        started = time.monotonic()
        code, report = _preflight(app)
        took = time.monotonic() - started

    found = _by_check(report)
    assert found["dns"]["severity"] == "warning"
    assert f"{dns} did not answer" in found["dns"]["detail"]
    assert "NEWSLETTER_DNS_SERVER" in found["dns"]["detail"]
    assert not any(c.startswith(("spf", "dkim:", "dmarc")) for c in found)  # not guessed
    assert code == 0  # nothing was learnt, so nothing is claimed; the message checks passed
    assert took < 30  # one timeout, not one per record


HIDING_FOOTER = """{% extends "builtin/digest/body.html" %}
{% block footer %}
<tr><td class="foot">{{ postal_address }}
<div style="display:none"><a href="{{ unsubscribe_url }}">Unsubscribe</a></div>
</td></tr>
{% endblock %}
"""


def test_a_template_that_hides_the_unsubscribe_link_blocks(
    sqlite_db: str, data_dir: Path, tmp_path: Path, zone: tuple[Zone, str], keys: tuple[Path, Path]
) -> None:
    answers, dns = zone
    _good_zone(answers, keys)
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "body.html").write_text(HIDING_FOOTER)
    story = tmp_path / "story.txt"
    story.write_text("Water is back in the east\n\nThe city restored supply on Monday.\n")
    app = AppProcesses(_env(data_dir, sqlite_db, dns, keys), tmp_path)
    # The link is there, so the list takes the template; it is only not visible.
    app.run(
        "lists", "create", "news", "--name", "The Newsroom Daily", "--template-dir", str(folder)
    )
    app.run("subscribers", "add", "reader@example.org", "--list", "news", "--confirmed")
    app.run("stories", "add", str(story), "--list", "news")

    code, report = _preflight(app)

    assert code == 1
    found = _by_check(report)
    assert found["digest"]["detail"].startswith("the next digest (not composed yet)")
    link = found["unsubscribe-link"]
    assert link["severity"] == "blocking"
    assert "hidden" in link["detail"] and "Unsubscribe</a>" in link["detail"]
    assert found["size"]["ok"] is True and found["links"]["ok"] is True


def test_malformed_links_block_and_are_named(
    sqlite_db: str, data_dir: Path, tmp_path: Path, zone: tuple[Zone, str], keys: tuple[Path, Path]
) -> None:
    answers, dns = zone
    _good_zone(answers, keys)
    populate(["reader@example.org"])
    _set_draft_html(
        "<html><body>"
        '<p><a href="https://news.example.com/stories/ok">fine</a> '
        '<a href="https://news.example.com/a story">spaced</a> '
        '<a href="javascript:alert(1)">script</a> <a href="/stories/relative">relative</a> '
        '<a href="https:///no-host">no host</a></p>'
        f'<p><a href="{ph.UNSUBSCRIBE_URL}">Unsubscribe</a></p></body></html>'
    )
    app = AppProcesses(_env(data_dir, sqlite_db, dns, keys), tmp_path)

    code, report = _preflight(app)

    assert code == 1
    detail = _by_check(report)["links"]["detail"]
    assert detail.startswith("4 malformed link(s)")
    for bad in ("a story", "javascript:alert(1)", "/stories/relative", "https:///no-host"):
        assert bad in detail
    assert "stories/ok" not in detail


def _oversized_html() -> str:
    story = "<p>" + "The report from the front line, with every detail of the day. " * 30 + "</p>"
    return (
        "<html><body>"
        + "".join(f"<h2>Story {i}</h2>{story}" for i in range(70))
        + f'<p><a href="{ph.UNSUBSCRIBE_URL}">Unsubscribe</a></p></body></html>'
    )


@pytest.mark.timeout(300)
def test_send_refuses_html_over_the_clip_and_skip_preflight_sends_it(
    sqlite_db: str,
    data_dir: Path,
    tmp_path: Path,
    zone: tuple[Zone, str],
    keys: tuple[Path, Path],
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers, dns = zone
    _good_zone(answers, keys)
    digest_id = populate(["reader@example.org"])
    _set_draft_html(_oversized_html())
    env = _env(data_dir, sqlite_db, dns, keys, smtp_server.url)
    app = AppProcesses(env, tmp_path)

    code, report = _preflight(app)
    assert code == 1
    size = _by_check(report)["size"]
    assert size["severity"] == "blocking" and "over Gmail's clip" in size["detail"]

    refused = app.run("digest", "send", "--list", "news", check=False)
    assert refused.returncode == 1
    assert "BLOCKING size" in " ".join(refused.stderr.split())
    assert "--skip-preflight" in refused.stderr
    assert "Traceback" not in refused.stderr
    with session_scope() as session:
        assert session.get(Digest, digest_id).status == "draft"  # type: ignore[union-attr]

    # The admin API answers alike: 409 with the findings, and nothing sent.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    from newsletter.web.app import create_app

    with TestClient(create_app()) as api:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        got = api.get("/api/lists/news/preflight", headers=auth)
        assert got.status_code == 200
        assert got.json()["blocked"] is True
        assert _by_check(got.json())["size"]["severity"] == "blocking"
        posted = api.post("/api/sends", json={"list": "news"}, headers=auth)
        assert posted.status_code == 409
        assert _by_check(posted.json()["detail"])["size"]["severity"] == "blocking"
        assert api.get("/api/lists/nope/preflight", headers=auth).status_code == 404
    with session_scope() as session:
        assert session.get(Digest, digest_id).status == "draft"  # type: ignore[union-attr]
    assert smtp_server.messages == []

    app.start_worker()
    try:
        app.wait_ready()
        sent = app.run("digest", "send", "--list", "news", "--skip-preflight", "--wait", "--json")
        assert json.loads(sent.stdout)["status"] == "sent"
    finally:
        app.stop()
    [message] = smtp_server.wait_for(lambda msgs: len(msgs) == 1)
    assert message.rcpt_tos == ["reader@example.org"]


@pytest.mark.timeout(300)
def test_one_click_is_asked_of_the_running_web_app_and_a_foreign_secret_blocks(
    sqlite_db: str, data_dir: Path, tmp_path: Path, zone: tuple[Zone, str], keys: tuple[Path, Path]
) -> None:
    answers, dns = zone
    _good_zone(answers, keys)
    populate(["reader@example.org"])
    env = _env(data_dir, sqlite_db, dns, keys)
    web = AppProcesses({k: v for k, v in env.items() if k != "NEWSLETTER_BASE_URL"}, tmp_path)
    try:
        base = web.start_web()
        app = AppProcesses(env | {"NEWSLETTER_BASE_URL": base}, tmp_path)

        code, report = _preflight(app)
        one_click = _by_check(report)["one-click"]
        assert one_click["ok"] is True, one_click
        assert "recognises a reader's link" in one_click["detail"]
        # http:// in development is a warning, not a block.
        assert _by_check(report)["list-unsubscribe"]["severity"] == "warning"
        assert code == 0
        # The sample reader's one-click POST unsubscribed nobody.
        listed = json.loads(app.run("subscribers", "list", "--json").stdout)
        assert listed[0]["subscriptions"] == {"news": "confirmed"}

        other = env | {"NEWSLETTER_BASE_URL": base, "NEWSLETTER_SECRET_KEY": "another-secret-" * 3}
        code, report = _preflight(AppProcesses(other, tmp_path))
        assert code == 1
        one_click = _by_check(report)["one-click"]
        assert one_click["severity"] == "blocking"
        assert "does not recognise this sender's links" in one_click["detail"]
    finally:
        web.stop()


def test_dns_findings_block_in_production_and_warn_in_development_without_dkim(
    tmp_path: Path, zone: tuple[Zone, str]
) -> None:
    from newsletter.config import Settings
    from newsletter.preflight.run import dns_findings

    answers, dns = zone
    answers.txt["example.com"] = [SPF]  # no DKIM record, no DMARC
    common: dict[str, Any] = {
        "NEWSLETTER_FROM": "The Newsroom <news@example.com>",
        "dns_server": dns,
        "data_dir": tmp_path,
    }
    production = Settings(
        env="production",
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        broker_url="redis://127.0.0.1:1/0",
        smtp_url="smtp://127.0.0.1:25",
        base_url="https://news.example.com",
        secret_key="s" * 32,
        admin_token="a" * 32,
        **common,
    )
    development = Settings(**common)

    strict = {f.check: f for f in dns_findings(production, [])}
    lenient = {f.check: f for f in dns_findings(development, [])}

    assert strict["dkim"].severity == "blocking"
    assert "set NEWSLETTER_DKIM_KEY_FILE" in strict["dkim"].detail
    assert lenient["dkim"].severity == "warning"
    assert strict["spf"].ok and lenient["spf"].ok
    assert strict["dmarc"].severity == lenient["dmarc"].severity == "warning"
