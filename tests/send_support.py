"""Shared setup for the sending tests: a list of confirmed people, a digest, the env."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from newsletter.db import session_scope
from newsletter.digests import fields as ph
from newsletter.models import Digest, MailingList, Subscriber, Subscription
from tests.services import AppProcesses, RedisServer, wait_until

__all__ = [
    "HTML",
    "TEXT",
    "RedisServer",  # lives in tests/services.py; re-exported for the sending tests
    "dkim_keys",
    "populate",
    "send_env",
    "status",
    "wait_status",
]

HTML = (
    '<!doctype html><html><body><h1 style="color:#222">Today\'s stories</h1>'
    f"<p>Hello {ph.NAME},</p>"
    + "".join(
        f"<p>Story {i}: the report from the front line, café and naïve.</p>" for i in range(30)
    )
    + f'<p><a href="{ph.UNSUBSCRIBE_URL}">Unsubscribe</a> ({ph.EMAIL})</p></body></html>'
)
TEXT = (
    f"Hello {ph.NAME},\n\n"
    + "".join(f"Story {i}: the report from the front line, café and naïve.\n" for i in range(30))
    + f"\nUnsubscribe: {ph.UNSUBSCRIBE_URL}\n"
)


def populate(emails: list[str], slug: str = "news") -> int:
    """A list with these confirmed subscribers (names derived) and one draft digest."""
    with session_scope() as session:
        mlist = MailingList(slug=slug, name="The Newsroom Daily")
        session.add(mlist)
        session.flush()
        for i, email in enumerate(emails):
            sub = Subscriber(email=email, name=f"Reader {i}")
            session.add(sub)
            session.flush()
            session.add(Subscription(list_id=mlist.id, subscriber_id=sub.id, status="confirmed"))
        digest = Digest(list_id=mlist.id, subject="Today’s digest", html=HTML, text=TEXT)
        session.add(digest)
        session.flush()
        return digest.id


def dkim_keys(folder: Path) -> tuple[Path, Path]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    paths = []
    for name, key in (("rsa.pem", rsa_key), ("ed.pem", ed_key)):
        path = folder / name
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        paths.append(path)
    return paths[0], paths[1]


def send_env(data_dir: Path, smtp_url: str, database: str, broker: str | None) -> dict[str, str]:
    env = {
        "NEWSLETTER_DATA_DIR": str(data_dir),
        "NEWSLETTER_DATABASE_URL": database,
        "NEWSLETTER_SMTP_URL": smtp_url,
        "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "NEWSLETTER_FROM": "The Newsroom <news@example.com>",
        "NEWSLETTER_BASE_URL": "https://news.example.com",
        "NEWSLETTER_BOUNCE_DOMAIN": "bounces.example.com",
        "NEWSLETTER_SEND_RETRY_BASE_SECONDS": "0.2",
        "NEWSLETTER_SEND_MAX_ATTEMPTS": "3",
        "NEWSLETTER_SEND_DOMAIN_BACKOFF_SECONDS": "0.2",
        "NEWSLETTER_SEND_PROBE_SECONDS": "0.5",
        "NEWSLETTER_SEND_BATCH_SIZE": "10",
    }
    if broker:
        env["NEWSLETTER_BROKER_URL"] = broker
    return env


def status(app: AppProcesses, digest_id: int) -> dict[str, Any]:
    out = app.run("sends", "status", str(digest_id), "--json")
    return json.loads(out.stdout)


def wait_status(
    app: AppProcesses, digest_id: int, want: tuple[str, ...] = ("sent",), timeout: float = 90
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        last.update(status(app, digest_id))
        return dict(last) if last["status"] in want else None

    return wait_until(
        reached,
        timeout,
        f"send {digest_id} to reach {want}",
        interval=0.5,
        details=lambda: f"last status: {last}\n" + app.log("worker"),
    )
