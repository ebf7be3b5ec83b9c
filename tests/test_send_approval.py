"""Two-person approval through the CLI and the admin API (NEWSLETTER_SEND_APPROVAL=true):
a send waits as awaiting_approval, the person who asked cannot approve it, another
sender can (and the send then runs to the end with a real worker), a viewer cannot,
a refusal makes the digest a draft again, and the audit log names everyone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.models import AuditEntry
from tests.console_support import Console, console_env
from tests.send_support import populate
from tests.services import AppProcesses, SmtpServer, wait_until


@pytest.fixture
def app(
    sqlite_db: str, data_dir: Path, tmp_path: Path, smtp_server: SmtpServer
) -> Iterator[AppProcesses]:
    processes = AppProcesses({}, tmp_path)
    console_env(processes, data_dir, smtp_server.url, sqlite_db)
    processes.env["NEWSLETTER_SEND_APPROVAL"] = "true"
    try:
        processes.start_web()
        processes.start_worker("--concurrency", "1")
        yield processes
    finally:
        processes.stop()


def user(app: AppProcesses, email: str, role: str) -> str:
    """The user, created through the CLI; returns their new API token."""
    Console(app).user(email, role)
    return app.run("users", "token", email).stdout.strip()


def sent(app: AppProcesses, token: str, send_id: int) -> dict[str, Any]:
    """Wait for the send to be sent, watching it through the API (quicker than the CLI)."""

    def status() -> dict[str, Any] | None:
        found: dict[str, Any] = httpx.get(
            f"{app.base_url}/api/sends/{send_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        return found if found["status"] == "sent" else None

    return wait_until(status, 90, f"send {send_id} to be sent", interval=0.3)


def api(
    app: AppProcesses, token: str, path: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return httpx.post(
        app.base_url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_a_send_waits_for_a_second_sender_through_the_cli_and_the_api(
    app: AppProcesses, smtp_server: SmtpServer
) -> None:
    news = populate([f"n{i}@example.org" for i in range(12)], slug="news")
    sport = populate([f"s{i}@example.org" for i in range(8)], slug="sport")
    asker = user(app, "asker@example.com", "sender")
    desk = user(app, "desk@example.com", "sender")
    viewer = user(app, "viewer@example.com", "viewer")

    asked = api(app, asker, "/api/sends", {"list": "news", "skip_preflight": True})
    assert asked.status_code == 201, asked.text
    assert asked.json()["id"] == news and asked.json()["status"] == "awaiting_approval"
    assert asked.json()["requested_by"] == "asker@example.com"

    # The person who asked cannot approve, through either face.
    own = app.run("sends", "approve", str(news), "--by", "asker@example.com", check=False)
    assert own.returncode == 2
    assert own.stderr.strip().splitlines() == [
        "Error: the person who asked for a send cannot approve it"
    ]
    assert api(app, asker, f"/api/sends/{news}/approve").status_code == 403
    # A viewer may not approve (nor reject) at all.
    assert api(app, viewer, f"/api/sends/{news}/approve").status_code == 403
    assert api(app, viewer, f"/api/sends/{news}/reject").status_code == 403
    still = httpx.get(
        f"{app.base_url}/api/sends/{news}", headers={"Authorization": f"Bearer {viewer}"}
    )
    assert still.json()["status"] == "awaiting_approval"
    assert not smtp_server.messages

    # Refused: the digest is a draft again, nothing was sent; asked again, approved by the CLI.
    rejected = api(app, desk, f"/api/sends/{news}/reject")
    assert rejected.status_code == 200 and rejected.json()["status"] == "draft"
    again = api(app, asker, "/api/sends", {"list": "news", "skip_preflight": True})
    assert again.json()["id"] == news and again.json()["status"] == "awaiting_approval"
    out = app.run("sends", "approve", str(news), "--by", "desk@example.com", "--json").stdout
    assert '"approved_by": "desk@example.com"' in out
    assert sent(app, viewer, news)["sent"] == 12

    # The other list: asked through the API, approved through the API by another sender.
    api(app, asker, "/api/sends", {"list": "sport", "skip_preflight": True}).raise_for_status()
    approved = api(app, desk, f"/api/sends/{sport}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] in ("sending", "sent")
    assert sent(app, viewer, sport)["sent"] == 8
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == sorted(
        [f"n{i}@example.org" for i in range(12)] + [f"s{i}@example.org" for i in range(8)]
    )

    with session_scope() as session:
        log = [
            (e.actor, e.via, e.action, e.target)
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.action.like("sends.%")).order_by(AuditEntry.id)
            )
        ]
    assert ("asker@example.com", "api", "sends.send", "list news") in log
    assert ("desk@example.com", "api", "sends.reject", f"send {news}") in log
    assert any(a == "sends.approve" and t == f"send {news}" and v == "cli" for _, v, a, t in log)
    assert ("desk@example.com", "api", "sends.approve", f"send {sport}") in log
    # Refused attempts leave no entry.
    assert not any(actor in ("viewer@example.com",) for actor, *_ in log)
    assert [a for _, _, a, t in log if t == f"send {news}"].count("sends.approve") == 1
