"""`subscribers erase` (and POST /api/subscribers/erase) leaves the address nowhere: not in
any table or text column, not in the send journal, not in the catcher's outbox; only the
anonymous suppression hash stays. On SQLite and PostgreSQL, through the CLI and the API."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from newsletter.bounces.handling import record_bounce, record_send_refusal
from newsletter.bounces.parse import BounceResult
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.mail.catcher import start_catcher
from newsletter.models import BounceEvent, BounceRejection, Delivery, Digest, Suppression
from newsletter.sending.journal import FileJournal
from newsletter.subscriptions.consent import ConsentRecord, subscribe
from newsletter.subscriptions.lists import create_list
from tests.bounce_support import send_digest
from tests.services import free_port
from tests.test_cli import cli

READER = "ana.erase@example.org"
MIXED = "Ana.Erase@Example.ORG"  # how a DSN or an operator may spell it
LOCAL = "ana.erase"
OTHER = "keep.me@example.org"


def _bounce(recipient: str, diagnostic: str, kind: str = "soft") -> BounceResult:
    return BounceResult(
        recipient=recipient,
        kind=kind,  # type: ignore[arg-type]
        reason="mailboxfull" if kind == "soft" else "blocked",
        status="4.2.2" if kind == "soft" else "5.7.1",
        diagnostic=diagnostic,
        remote_domain="example.org",
    )


def _catch(outbox: Path) -> None:
    """Three messages through the real catcher: the digest to the reader, a message to
    someone else that quotes the reader's address only inside a base64 body, and one
    that has nothing to do with them."""
    port = free_port()
    catcher = start_catcher(outbox, port=port)
    try:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            to_reader = EmailMessage()
            to_reader["From"], to_reader["To"] = "news@example.com", f"Ana <{MIXED}>"
            to_reader["Subject"] = "Morning Briefing"
            to_reader.set_content("Good morning, Ana.")
            smtp.send_message(to_reader, to_addrs=[READER])

            quoting = EmailMessage(policy=default)
            quoting["From"], quoting["To"] = "news@example.com", OTHER
            quoting["Subject"] = "Forwarded"
            quoting.set_content(f"Ana ({MIXED}) sent this to you.", cte="base64")
            assert MIXED.encode() not in quoting.as_bytes()
            smtp.send_message(quoting, to_addrs=[OTHER])

            unrelated = EmailMessage()
            unrelated["From"], unrelated["To"] = "news@example.com", OTHER
            unrelated["Subject"] = "Morning Briefing"
            unrelated.set_content("Good morning.")
            smtp.send_message(unrelated, to_addrs=[OTHER])
    finally:
        catcher.stop()


def _traces(data_dir: Path) -> None:
    """A reader with deliveries, bounce events and other rows that quote the address in
    any case, next to another reader whose rows must stay as they are."""
    settings = get_settings()
    with session_scope() as session:
        create_list(session, "morning", "Morning Briefing")
        for email in (MIXED, OTHER):
            subscribe(
                session,
                settings,
                email=email,
                name="Ana" if email == MIXED else "",
                list_slug="morning",
                consent=ConsentRecord(ip="192.0.2.7", user_agent="Firefox", source="form"),
                confirmed=True,
            )
    first = {s.email: s for s in send_digest([READER, OTHER], slug="morning", subject="d1")}
    second = {s.email: s for s in send_digest([READER], slug="morning", subject="d2")}
    with session_scope() as session:
        # The sending engine's own refusal: "552 5.2.2 <address>: Mailbox full".
        record_send_refusal(
            session,
            settings,
            first[READER].delivery_id,
            MIXED,
            552,
            f"5.2.2 <{MIXED}>: Mailbox full",
        )
        # A DSN that names only the local part.
        record_bounce(
            session,
            settings,
            _bounce(READER, f"smtp; 452 4.2.2 user {LOCAL.upper()} over quota"),
            delivery_id=second[READER].delivery_id,
            source="mailbox",
        )
        record_send_refusal(
            session, settings, first[OTHER].delivery_id, OTHER, 552, f"5.2.2 <{OTHER}>: full"
        )
        session.get(Delivery, second[READER].delivery_id).smtp_reply = (  # type: ignore[union-attr]
            f"250 2.0.0 Ok: queued for <{READER.upper()}>"
        )
        # Rows that quote the address without pointing at the subscriber.
        session.add(
            BounceEvent(
                kind="policy",
                reason="blocked",
                diagnostic=f"550 5.7.1 <{MIXED}> rejected by policy",
                source="webhook",
                fingerprint="policy-without-subscriber",
            )
        )
        session.add(BounceRejection(source="webhook", reason=f"no delivery for {MIXED}"))
        digest = session.get(Digest, session.scalar(select(Delivery.digest_id)))
        assert digest is not None
        digest.pause_reason = f"SMTP refused ana.erase%40example.org ({MIXED})"
    with session_scope() as session:
        digest_id = session.scalar(
            select(Delivery.digest_id).where(Delivery.id == second[READER].delivery_id)
        )
    assert digest_id is not None
    journal = FileJournal(data_dir / "journal", digest_id)
    journal.record(second[READER].delivery_id)
    journal.close()
    _catch(settings.outbox_dir)


def dump() -> str:
    """Every value of every row of every table in the database, one per line."""
    with session_scope() as session:
        names = inspect(session.get_bind()).get_table_names()
        assert "bounce_events" in names and "deliveries" in names
        return "\n".join(
            str(value)
            for name in names
            for row in session.execute(text(f'SELECT * FROM "{name}"'))
            for value in row
        )


def files_text(folder: Path) -> str:
    """Raw and decoded text of every file under a folder (a Maildir's bodies decoded)."""
    from email import message_from_bytes

    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        out.append(raw.decode("utf-8", "replace"))
        for part in message_from_bytes(raw, policy=default).walk():
            if not part.is_multipart():
                out.append(str(part.get_content()))
    return "\n".join(out)


def counts() -> tuple[int, int, int]:
    with session_scope() as session:
        return (
            session.scalar(select(func.count()).select_from(Delivery)) or 0,
            session.scalar(select(func.count()).select_from(BounceEvent)) or 0,
            session.scalar(select(func.count()).select_from(Suppression)) or 0,
        )


@pytest.mark.timeout(240)
@pytest.mark.parametrize("face", ["cli", "api"])
def test_erase_leaves_the_address_nowhere(database: str, data_dir: Path, face: str):
    _traces(data_dir)
    before = dump().lower()
    assert READER in before and LOCAL in before
    outbox = get_settings().outbox_dir
    assert len([p for p in outbox.rglob("*") if p.is_file()]) == 3
    assert READER in files_text(outbox).lower()
    deliveries, events, _ = counts()

    if face == "cli":
        result = cli("subscribers", "erase", MIXED, "--json")
        assert result.returncode == 0, result.stderr
    else:
        from fastapi.testclient import TestClient

        from newsletter.web.app import create_app

        with TestClient(create_app()) as client:
            result = client.post(
                "/api/subscribers/erase",
                json={"email": MIXED},
                headers={"Authorization": f"Bearer {get_settings().admin}"},
            )
        assert result.status_code == 200, result.text
        assert result.json()["erased"] is True

    after = dump().lower()
    assert READER not in after
    assert LOCAL not in after  # not even the bare local part a DSN quoted
    assert "ana" not in after.splitlines()  # the name went with the subscriber
    # The other reader's rows are untouched; the erased reader's are kept, anonymous,
    # for the send and bounce counts; one suppression hash, reason "erased".
    assert f"<{OTHER}>: full" in after
    assert counts() == (deliveries, events, 1)
    with session_scope() as session:
        assert session.scalars(select(Suppression.reason)).all() == ["erased"]
        assert (
            session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.subscriber_id.is_(None))
            )
            == 2
        )
    journal = data_dir / "journal"
    assert any(journal.iterdir())
    assert READER not in files_text(journal).lower()
    left = files_text(outbox).lower()
    assert READER not in left and "ana.erase%40" not in left
    assert len([p for p in outbox.rglob("*") if p.is_file()]) == 1  # the unrelated one


def test_erase_of_an_unknown_address_changes_nothing(database: str, data_dir: Path):
    _traces(data_dir)
    before = dump()
    result = cli("subscribers", "erase", "nobody@example.org")
    assert result.returncode == 2 and "no subscriber" in result.stderr
    assert dump() == before
