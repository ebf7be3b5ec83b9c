"""Relays as providers run them: STARTTLS, implicit TLS (smtps://) and AUTH, and a server
without PIPELINING (what `newsletter up`'s own catcher is).

Each is a real aiosmtpd server with a certificate this test makes (a CA of its own, the
server certificate for 127.0.0.1) and trusts through SSL_CERT_FILE, as an operator would
trust a private relay's CA. A digest goes out through `newsletter worker` and a
confirmation mail through the sign-up path, end to end; the password never shows in a
log or an output.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.send_support import populate, send_env, wait_status
from tests.services import AppProcesses, RecordingHandler, SmtpRules, free_port

USER = "relay-user"
PASSWORD = "s3cret-Relay-Pa55word"


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsletter test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
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
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok)


class Relay:
    """An aiosmtpd relay in one of the ways providers run them."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind = kind
        self.handler = RecordingHandler(SmtpRules(pipelining=kind != "plain-no-pipelining"))
        self.port = free_port()
        ca, cert, key = _certificates(folder)
        self.ca_file = ca
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options: dict[str, object] = {}
        if kind == "starttls":
            options = {
                "tls_context": context,
                "require_starttls": True,
                "authenticator": _authenticator,
                "auth_require_tls": True,
            }
        elif kind == "smtps":
            options = {
                "ssl_context": context,
                "authenticator": _authenticator,
                "auth_require_tls": False,  # the whole session is TLS already
            }
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)

    @property
    def url(self) -> str:
        if self.kind == "plain-no-pipelining":
            return f"smtp://127.0.0.1:{self.port}"
        scheme = {"starttls": "smtp+starttls", "smtps": "smtps"}[self.kind]
        return f"{scheme}://{quote(USER)}:{quote(PASSWORD)}@127.0.0.1:{self.port}"

    def start(self) -> Relay:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list:  # type: ignore[type-arg]
        with self.handler.lock:
            return list(self.handler.messages)


@pytest.mark.parametrize("kind", ["starttls", "smtps", "plain-no-pipelining"])
def test_digest_and_confirmation_through_the_relay(
    kind: str, sqlite_db: str, data_dir: Path, tmp_path: Path
) -> None:
    relay = Relay(kind, tmp_path).start()
    readers = [f"t{i}@example.org" for i in range(12)]
    digest_id = populate(readers)
    env = send_env(data_dir, relay.url, sqlite_db, None)
    env["SSL_CERT_FILE"] = str(relay.ca_file)
    app = AppProcesses(env, tmp_path)
    try:
        app.start_worker("--concurrency", "1")
        app.run("digest", "send", "--list", "news")
        st = wait_status(app, digest_id)
        assert st["sent"] == len(readers), st
        added = app.run("subscribers", "add", "new@example.org", "--list", "news")
        assert "pending" in added.stdout

        def arrived() -> bool:
            return any("new@example.org" in m.rcpt_tos for m in relay.messages())

        from tests.services import wait_until

        wait_until(arrived, 60, f"the confirmation mail through the {kind} relay")
        got = [r for m in relay.messages() for r in m.rcpt_tos]
        assert sorted(got) == sorted([*readers, "new@example.org"])
        confirmation = next(m for m in relay.messages() if "new@example.org" in m.rcpt_tos)
        assert "/confirm/" in confirmation.message.get_body(("plain",)).get_content()
        everything = app.log("worker") + added.stdout + added.stderr
        assert PASSWORD not in everything and quote(PASSWORD) not in everything
    finally:
        app.stop()
        relay.stop()
