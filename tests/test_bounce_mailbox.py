"""The mailbox poller against a real IMAP and POP3 server (Dovecot, over TLS).

Dovecot runs from the Debian package with a configuration of the test's own: TLS with a
certificate from a CA the test makes (the poller verifies it through
NEWSLETTER_BOUNCE_MAILBOX_CA_FILE), one user, a Maildir the test delivers into. Where
Dovecot is not installed the tests skip (and fail on CI), like the other real services.
"""

from __future__ import annotations

import imaplib
import ipaddress
import os
import poplib
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from newsletter.bounces.poller import poll_mailbox
from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from tests.bounce_support import (
    FIXTURES,
    bounce_settings_fixture,  # noqa: F401 - the bounce_settings fixture
    events_for,
    is_suppressed,
    send_digest,
    subscriber_state,
)
from tests.conftest import reset_caches
from tests.services import free_port, unavailable

USER, PASSWORD = "bounces", "s3cret/pass@word"
NOBODY = 65534


def _certificates(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Mail CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(cert.public_bytes(pem))
    (folder / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@dataclass
class Dovecot:
    root: Path
    imaps: int
    pop3s: int

    @property
    def maildir(self) -> Path:
        return self.root / "home" / USER / "Maildir"

    def url(self, scheme: str) -> str:
        port = self.imaps if scheme == "imaps" else self.pop3s
        return f"{scheme}://{USER}:s3cret%2Fpass%40word@127.0.0.1:{port}/INBOX"

    def deliver(self, raw: bytes) -> None:
        """Local delivery into the Maildir, as an MDA does (tmp, then rename into new)."""
        name = f"{time.time():.6f}.{uuid.uuid4().hex}.test"
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, NOBODY, NOBODY)
        tmp.rename(self.maildir / "new" / name)

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.root / "ca.pem"))

    def unseen(self) -> int:
        with imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=self.tls()) as imap:
            imap.login(USER, PASSWORD)
            imap.select("INBOX")
            _, data = imap.search(None, "UNSEEN")
            return len(data[0].split())

    def pop_count(self) -> int:
        pop = poplib.POP3_SSL("127.0.0.1", self.pop3s, context=self.tls())
        pop.user(USER)
        pop.pass_(PASSWORD)
        count = pop.stat()[0]
        pop.quit()
        return count


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )
    if binary is None:
        unavailable("Dovecot (apt-get install dovecot-imapd dovecot-pop3d)", "not installed")
    if os.geteuid() != 0:
        unavailable("Dovecot", "the test runs it as root to switch to the mail user")
    root = Path(tempfile.mkdtemp(prefix="nl-dovecot-"))
    root.chmod(0o755)
    _certificates(root)
    home = root / "home" / USER
    for sub in ("cur", "new", "tmp"):
        (home / "Maildir" / sub).mkdir(parents=True)
    for path in (root / "home", home, home / "Maildir", *((home / "Maildir").iterdir())):
        os.chown(path, NOBODY, NOBODY)
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    imaps, pop3s = free_port(), free_port()
    (root / "dovecot.conf").write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
auth_mechanisms = plain
disable_plaintext_auth = yes
first_valid_uid = {NOBODY}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={NOBODY} gid={NOBODY} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
"""
    )
    proc = subprocess.Popen(
        [binary, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = Dovecot(root, imaps, pop3s)
    deadline = time.monotonic() + 20
    while True:
        try:
            server.unseen()
            break
        except (OSError, imaplib.IMAP4.error):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                proc.kill()
                pytest.fail(f"dovecot did not start: {proc.stderr.read()!r} {log}")  # type: ignore[union-attr]
            time.sleep(0.1)
    yield server
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mailbox(dovecot: Dovecot, bounce_settings: Settings, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for sub in ("new", "cur"):
        for path in (dovecot.maildir / sub).iterdir():
            path.unlink()
    monkeypatch.setenv("NEWSLETTER_BOUNCE_MAILBOX_CA_FILE", str(dovecot.root / "ca.pem"))
    reset_caches()
    return dovecot


def _with_scheme(monkeypatch: pytest.MonkeyPatch, dovecot: Dovecot, scheme: str) -> Settings:
    monkeypatch.setenv("NEWSLETTER_BOUNCE_MAILBOX_URL", dovecot.url(scheme))
    reset_caches()
    return get_settings()


def _bounce_to(verp: str, name: str = "postfix-user-unknown.eml") -> bytes:
    raw = (FIXTURES / name).read_bytes()
    return raw.replace(b"bounces+TESTTOKEN@bounces.example.com", verp.encode())


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_poller_records_verp_bounces_and_refuses_the_rest(
    mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    settings = _with_scheme(monkeypatch, mailbox, scheme)
    good, forged = send_digest(["ana@example.org", "bo@example.org"])
    mailbox.deliver(_bounce_to(good.verp(settings)))
    mailbox.deliver(_bounce_to(f"bounces+{forged.delivery_id}-000000000000@bounces.example.com"))
    mailbox.deliver(b"From: friend@example.net\r\nSubject: lunch?\r\n\r\nAre you free?\r\n")

    report = poll_mailbox(settings)
    assert (report.fetched, report.recorded, report.refused, report.failed) == (3, 1, 2, 0)
    assert subscriber_state("ana@example.org")[0] == "bounced" and is_suppressed("ana@example.org")
    assert subscriber_state("bo@example.org")[0] == "active"
    if scheme == "imaps":
        assert mailbox.unseen() == 0
    else:
        assert mailbox.pop_count() == 0
    assert poll_mailbox(settings).fetched == 0


def test_a_message_stays_in_the_mailbox_until_it_is_recorded(
    mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _with_scheme(monkeypatch, mailbox, "imaps")
    (sent,) = send_digest(["ana@example.org"])
    mailbox.deliver(_bounce_to(sent.verp(settings)))
    with session_scope() as session:
        session.execute(text("ALTER TABLE bounce_events RENAME TO bounce_events_away"))
    report = poll_mailbox(settings)
    assert (report.fetched, report.recorded, report.failed) == (1, 0, 1)
    assert mailbox.unseen() == 1
    with session_scope() as session:
        session.execute(text("ALTER TABLE bounce_events_away RENAME TO bounce_events"))
    assert subscriber_state("ana@example.org")[0] == "active"
    assert poll_mailbox(settings).recorded == 1
    assert events_for(sent.delivery_id) == [("hard", "userunknown")]
    assert mailbox.unseen() == 0


def test_bounces_poll_command_and_the_beat_task(
    mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _with_scheme(monkeypatch, mailbox, "pop3s")
    first, second = send_digest(["ana@example.org", "bo@example.org"])
    mailbox.deliver(_bounce_to(first.verp(settings)))
    run = subprocess.run(
        [sys.executable, "-m", "newsletter", "bounces", "poll"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "fetched 1, recorded 1" in run.stdout
    assert PASSWORD not in run.stdout + run.stderr

    from workers.tasks import poll_bounce_mailbox

    mailbox.deliver(_bounce_to(second.verp(settings), "gmail-no-such-user.eml"))
    assert poll_bounce_mailbox() == {"fetched": 1, "recorded": 1, "refused": 0}
    assert subscriber_state("bo@example.org")[0] == "bounced"


def test_wrong_password_and_bad_url_are_clear_errors(
    mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = dict(os.environ)
    env["NEWSLETTER_BOUNCE_MAILBOX_URL"] = mailbox.url("imaps").replace("s3cret", "wrong")
    run = subprocess.run(
        [sys.executable, "-m", "newsletter", "bounces", "poll"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 1 and "refused" in run.stderr and "Traceback" not in run.stderr
    assert "wrong" not in run.stderr
    env["NEWSLETTER_BOUNCE_MAILBOX_URL"] = "imap://bounces:x@127.0.0.1/INBOX"
    run = subprocess.run(
        [sys.executable, "-m", "newsletter", "bounces", "poll"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 2 and "imaps or pop3s" in run.stderr
