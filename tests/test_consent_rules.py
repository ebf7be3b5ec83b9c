"""An operator never overrides a reader's own decision: an import (with or without
--confirmed) or an admin add (CLI and API) skips or refuses a reader who unsubscribed
from the list, complained, hard-bounced or was erased, and says why. Only the reader's
own double opt-in (form, confirmation mail, confirm) brings them back.

On SQLite and PostgreSQL; the CLI as a subprocess, the web app in-process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.bounces.handling import record_bounce, record_send_refusal
from newsletter.bounces.parse import BounceResult
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Subscriber, Subscription
from newsletter.subscriptions.consent import ConsentRecord, subscribe
from newsletter.subscriptions.lists import create_list
from newsletter.subscriptions.tokens import make_unsubscribe_token
from tests.bounce_support import send_digest
from tests.services import SmtpServer
from tests.test_cli import cli

LEFT = "left@example.org"  # unsubscribed from the list with the link in a digest
COMPLAINED = "complained@example.org"  # marked a digest as spam
BOUNCED = "bounced@example.org"  # the mailbox does not exist
ERASED = "erased@example.org"  # asked to be erased
NEW = "new@example.org"
REFUSED = {
    LEFT: "unsubscribed",
    COMPLAINED: "complained",
    BOUNCED: "bounced",
    ERASED: "erased",
}


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {get_settings().admin}"}


@pytest.fixture
def web(database: str) -> Iterator[TestClient]:
    from newsletter.web.app import create_app

    with TestClient(create_app()) as client:
        yield client


@pytest.fixture
def readers(web: TestClient) -> TestClient:
    """Four readers who each said no (or whose mailbox did), the way it really happens."""
    settings = get_settings()
    with session_scope() as session:
        create_list(session, "morning", "Morning Briefing")
        for email in REFUSED:
            subscribe(
                session,
                settings,
                email=email,
                name="",
                list_slug="morning",
                consent=ConsentRecord(source="admin"),
                confirmed=True,
            )
    sent = {s.email: s for s in send_digest(list(REFUSED), slug="morning")}
    with session_scope() as session:
        sub_id = session.scalar(
            select(Subscription.id).join(Subscriber).where(Subscriber.email == LEFT)
        )
        assert sub_id is not None
        token = make_unsubscribe_token(settings.secret, sub_id)
        record_bounce(
            session,
            settings,
            BounceResult(recipient=COMPLAINED, kind="complaint", reason="abuse"),
            delivery_id=sent[COMPLAINED].delivery_id,
            source="test",
        )
        record_send_refusal(
            session, settings, sent[BOUNCED].delivery_id, BOUNCED, 550, "5.1.1 no such user"
        )
    # The reader's own unsubscribe (RFC 8058 one-click POST from the digest).
    assert web.post(f"/unsubscribe/{token}").status_code == 200
    erased = web.post("/api/subscribers/erase", json={"email": ERASED}, headers=admin_headers())
    assert erased.status_code == 200
    return web


def states() -> dict[str, dict[str, str]]:
    """address -> {list: subscription status} for everyone still known."""
    with session_scope() as session:
        return {
            s.email: {x.mailing_list.slug: x.status for x in s.subscriptions}
            for s in session.scalars(select(Subscriber))
        }


BEFORE = {
    LEFT: {"morning": "unsubscribed"},
    COMPLAINED: {"morning": "unsubscribed"},
    BOUNCED: {"morning": "confirmed"},  # still subscribed, but the address is suppressed
}


def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    lines = ["email,name", LEFT.upper(), COMPLAINED, BOUNCED, ERASED, f"{NEW},New"]
    path.write_text("\n".join(lines) + "\n")
    return path


SKIPPED = [
    {"line": 2, "email": LEFT.upper(), "reason": "unsubscribed"},
    {"line": 3, "email": COMPLAINED, "reason": "complained"},
    {"line": 4, "email": BOUNCED, "reason": "bounced"},
    {"line": 5, "email": ERASED, "reason": "erased"},
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("confirmed", [True, False], ids=["confirmed", "unconfirmed"])
def test_an_import_skips_readers_who_said_no_and_says_why(
    readers: TestClient, tmp_path: Path, confirmed: bool
):
    assert states() == BEFORE
    flag = ["--confirmed"] if confirmed else []
    result = cli(
        "subscribers", "import", str(csv_file(tmp_path)), "--list", "morning", *flag, "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["skipped"] == SKIPPED
    # Only the new address is added (or, without --confirmed, gets a confirmation mail);
    # nobody who said no gets one.
    assert (report["added"], report["confirmation_sent"]) == ((1, 0) if confirmed else (0, 1))
    assert states() == {**BEFORE, NEW: {"morning": "confirmed" if confirmed else "unconfirmed"}}

    again = cli("subscribers", "import", str(csv_file(tmp_path)), "--list", "morning", *flag)
    assert again.returncode == 0, again.stderr
    assert "added 0, confirmation sent 0, unchanged 1, skipped 4, invalid 0" in again.stdout
    assert f"skipped line 2: {LEFT.upper()}: unsubscribed" in again.stderr
    assert f"skipped line 5: {ERASED}: erased" in again.stderr
    assert states() == {**BEFORE, NEW: {"morning": "confirmed" if confirmed else "unconfirmed"}}


@pytest.mark.timeout(240)
def test_an_admin_add_is_refused_with_the_reason(readers: TestClient):
    for email, reason in REFUSED.items():
        for confirmed in (True, False):
            answer = readers.post(
                "/api/subscribers",
                json={"email": email, "list": "morning", "confirmed": confirmed},
                headers=admin_headers(),
            )
            assert answer.status_code == 409, answer.text
            (detail,) = answer.json()["detail"]
            assert detail["field"] == "email"
            assert f"({reason})" in detail["message"] and "not added" in detail["message"]
    for flag in (["--confirmed"], []):
        refused = cli("subscribers", "add", LEFT, "--list", "morning", *flag)
        assert refused.returncode == 2
        assert "unsubscribed from 'morning'" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    refused = cli("subscribers", "add", COMPLAINED, "--list", "morning", "--json")
    assert refused.returncode == 2 and "complained" in refused.stderr
    assert states() == BEFORE


@pytest.fixture
def eager(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    from workers.app import app as celery_app

    celery_app.conf.task_always_eager = True
    try:
        yield smtp_server
    finally:
        celery_app.conf.task_always_eager = False


def _sign_up(client: TestClient, email: str) -> None:
    page = client.get("/subscribe")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post(
        "/subscribe", data={"email": email, "list": "morning", "csrf_token": token.group(1)}
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text


def _confirm_link(smtp_server: SmtpServer, email: str) -> str:
    text = smtp_server.to(email)[-1].message.get_body(("plain",)).get_content()
    found = re.search(r"/confirm/(\S+)", text)
    assert found is not None
    return found.group(1)


@pytest.mark.timeout(240)
def test_only_the_readers_own_double_opt_in_brings_them_back(
    eager: SmtpServer, readers: TestClient, tmp_path: Path
):
    for email in (LEFT, COMPLAINED):
        _sign_up(readers, email)
        assert len(eager.to(email)) == 1  # the reader asked: the confirmation mail goes out
    # While they have not confirmed, an operator still cannot do it for them.
    pending = cli(
        "subscribers",
        "import",
        str(csv_file(tmp_path)),
        "--list",
        "morning",
        "--confirmed",
        "--json",
    )
    assert pending.returncode == 0, pending.stderr
    assert json.loads(pending.stdout)["skipped"] == SKIPPED
    assert states()[LEFT] == states()[COMPLAINED] == {"morning": "unconfirmed"}

    for email in (LEFT, COMPLAINED):
        assert readers.post(f"/confirm/{_confirm_link(eager, email)}").status_code == 200
    assert states()[LEFT] == states()[COMPLAINED] == {"morning": "confirmed"}
    back = cli(
        "subscribers",
        "import",
        str(csv_file(tmp_path)),
        "--list",
        "morning",
        "--confirmed",
        "--json",
    )
    report = json.loads(back.stdout)
    assert [s["reason"] for s in report["skipped"]] == ["bounced", "erased"]
    assert report["unchanged"] == 3 and report["added"] == 0  # new@ came with the first
    assert len(eager.to(LEFT)) == len(eager.to(COMPLAINED)) == 1  # no mail from the imports
