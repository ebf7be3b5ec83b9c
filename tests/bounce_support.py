"""Shared set-up for the bounce tests: a list, subscribers and sent deliveries to bounce."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.mail.verp import verp_address
from newsletter.models import (
    BounceEvent,
    Delivery,
    DeliveryStatus,
    Digest,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
HANDWRITTEN: dict[str, dict[str, str | None]] = json.loads((FIXTURES / "expected.json").read_text())
REAL: list[dict[str, str]] = json.loads((FIXTURES / "real" / "manifest.json").read_text())
BOUNCE_DOMAIN = "bounces.example.com"

# What a reader's status becomes after one bounce of each kind.
STATUS_AFTER = {
    "hard": "bounced",
    "soft": "active",
    "policy": "active",
    "complaint": "complained",
    "ignore": "active",
}


def corpus() -> list[tuple[str, bytes, str]]:
    """(name, raw message, expected kind) for every bounce fixture, real and hand-written."""
    items = [(e["file"], (FIXTURES / "real" / e["file"]).read_bytes(), e["class"]) for e in REAL]
    items += [
        (name, (FIXTURES / name).read_bytes(), str(want["kind"]))
        for name, want in sorted(HANDWRITTEN.items())
        if want["kind"] is not None
    ]
    return items


@pytest.fixture(name="bounce_settings")
def bounce_settings_fixture(monkeypatch: pytest.MonkeyPatch, database: str) -> Settings:
    """Settings with a bounce domain, on the test's database (SQLite and PostgreSQL)."""
    from tests.conftest import reset_caches

    monkeypatch.setenv("NEWSLETTER_BOUNCE_DOMAIN", BOUNCE_DOMAIN)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "bounce-test-secret")
    reset_caches()
    return get_settings()


@dataclass(frozen=True)
class Sent:
    delivery_id: int
    subscriber_id: int
    email: str

    def verp(self, settings: Settings) -> str:
        return verp_address(self.delivery_id, settings)


def send_digest(
    emails: list[str],
    *,
    slug: str = "news",
    subject: str = "Digest",
    message_ids: dict[str, str] | None = None,
) -> list[Sent]:
    """A digest 'sent' to each address: the ledger rows a bounce will refer to."""
    out: list[Sent] = []
    with session_scope() as session:
        mlist = session.scalar(select(MailingList).where(MailingList.slug == slug))
        if mlist is None:
            mlist = MailingList(slug=slug, name=slug.title())
            session.add(mlist)
            session.flush()
        digest = Digest(list_id=mlist.id, subject=subject, status="sent")
        session.add(digest)
        session.flush()
        for email in emails:
            sub = session.scalar(select(Subscriber).where(Subscriber.email == email))
            if sub is None:
                sub = Subscriber(email=email, name="")
                session.add(sub)
                session.flush()
            has = select(Subscription.id).where(
                Subscription.list_id == mlist.id, Subscription.subscriber_id == sub.id
            )
            if session.scalar(has) is None:
                session.add(
                    Subscription(
                        list_id=mlist.id, subscriber_id=sub.id, status=SubscriptionStatus.confirmed
                    )
                )
            delivery = Delivery(
                digest_id=digest.id,
                subscriber_id=sub.id,
                status=DeliveryStatus.sent,
                message_id=(message_ids or {}).get(email)
                or f"<d{digest.id}.{sub.id}@news.example.com>",
            )
            session.add(delivery)
            session.flush()
            out.append(Sent(delivery.id, sub.id, email))
    return out


def subscriber_state(email: str) -> tuple[str, int, dict[str, str]]:
    """(status, bounce score, list slug -> subscription status) as an operator sees it."""
    with session_scope() as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.email == email))
        assert sub is not None, email
        subs = {s.mailing_list.slug: s.status for s in sub.subscriptions}
        return sub.status, sub.bounce_score, subs


def events_for(delivery_id: int) -> list[tuple[str, str]]:
    with session_scope() as session:
        return [
            (e.kind, e.reason)
            for e in session.scalars(
                select(BounceEvent).where(BounceEvent.delivery_id == delivery_id)
            )
        ]


def is_suppressed(email: str) -> bool:
    from newsletter.subscriptions.suppression import is_suppressed as check

    with session_scope() as session:
        return check(session, get_settings(), email)
