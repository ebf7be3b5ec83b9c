"""Every operator action is offered by both faces, and they answer alike: the command's
`--json` prints what the admin API returns, because both call the same domain action.

Covers the actions added when the use cases moved out of the adapters: lists update and
delete, digest compose/list/preview/test, bounces ingest/unsuppress, subscribers erase.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import reset_caches
from tests.send_support import send_env
from tests.services import AppProcesses, SmtpServer

TOKEN = "admin-token-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STORY = "Water is back in the east\n\nThe city restored supply to 40,000 homes on Monday.\n"
DSN = (Path(__file__).parent / "fixtures" / "bounces" / "postfix-user-unknown.eml").read_bytes()


@pytest.mark.timeout(600)
def test_cli_json_and_api_agree_on_every_new_action(
    database: str,
    data_dir: Path,
    smtp_server: SmtpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = send_env(data_dir, smtp_server.url, database, None) | {"NEWSLETTER_ADMIN_TOKEN": TOKEN}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    app = AppProcesses(env, tmp_path)

    def cli(*args: str) -> Any:
        return json.loads(app.run(*args, "--json").stdout)

    from newsletter.web.app import create_app

    with TestClient(create_app()) as api:
        # Lists: create, update, list, delete.
        created = cli("lists", "create", "news", "--name", "The Newsroom Daily")
        assert created == {"slug": "news", "name": "The Newsroom Daily", "schedule": None,
                           "timezone": "UTC"}  # fmt: skip
        patched = api.patch(
            "/api/lists/news",
            json={"name": "Morning News", "schedule": "0 7 * * *", "timezone": "Europe/Kyiv"},
            headers=AUTH,
        )
        assert patched.status_code == 200, patched.text
        assert patched.json() == {"slug": "news", "name": "Morning News",
                                  "schedule": "0 7 * * *", "timezone": "Europe/Kyiv"}  # fmt: skip
        unscheduled = cli("lists", "update", "news", "--schedule", "none")
        assert unscheduled["schedule"] is None and unscheduled["name"] == "Morning News"
        assert cli("lists", "list") == api.get("/api/lists", headers=AUTH).json()
        bad = api.patch("/api/lists/news", json={"schedule": "every day"}, headers=AUTH)
        assert bad.status_code == 422 and "cron" in bad.text
        assert api.patch("/api/lists/nope", json={}, headers=AUTH).status_code == 404
        cli("lists", "create", "gone", "--name", "Gone")
        deleted = api.delete("/api/lists/gone", headers=AUTH).json()
        assert deleted == {"slug": "gone", "deleted": True, "subscriptions": 0, "digests": 0}
        refused = app.run("lists", "delete", "news", check=False)  # no terminal, no --yes
        assert refused.returncode == 2 and "--yes" in refused.stderr
        cli("lists", "create", "spare", "--name", "Spare")
        assert cli("lists", "delete", "spare", "--yes")["deleted"] is True
        assert [r["slug"] for r in cli("lists", "list")] == ["news"]

        # Digests: preview, test, compose, list.
        cli("subscribers", "add", "reader1@example.net", "--list", "news", "--confirmed")
        story = tmp_path / "story.txt"
        story.write_text(STORY)
        cli("stories", "add", str(story), "--list", "news")
        preview_cli = cli("digest", "preview", "--list", "news", "--out", str(tmp_path / "p.html"))
        preview_api = api.get("/api/digests/preview?list=news", headers=AUTH).json()
        assert preview_api["html"] == (tmp_path / "p.html").read_text()
        for key in ("subject", "stories", "html_bytes", "text_bytes", "clipped"):
            assert preview_cli[key] == preview_api[key], key
        tested = api.post(
            "/api/digests/test", json={"list": "news", "to": "editor@example.com"}, headers=AUTH
        ).json()
        also = cli("digest", "test", "--list", "news", "--to", "editor@example.com")
        assert tested["to"] == also["to"] == "editor@example.com"
        assert tested["subject"].startswith("[TEST] ")
        mails = smtp_server.wait_for(lambda m: len(m) >= 2)
        assert all(m.message["Subject"].startswith("[TEST] ") for m in mails)
        listed = cli("digest", "list")
        assert listed == api.get("/api/digests", headers=AUTH).json()
        assert [d["status"] for d in listed] == ["draft"]  # the test send composed the draft

        # Bounces: ingest over the API, unsuppress from the CLI, then the API says 409.
        ingested = api.post("/api/bounces/ingest", content=DSN, headers=AUTH).json()
        assert ingested["messages"] == 1 and ingested["actions"] == {"suppressed": 1}
        people = {p["email"]: p for p in cli("subscribers", "list")}
        assert people["reader1@example.net"]["status"] == "bounced"
        lifted = cli("bounces", "unsuppress", "reader1@example.net")
        assert lifted == {"email": "reader1@example.net", "suppressed": False}
        again = api.post(
            "/api/bounces/unsuppress", json={"email": "reader1@example.net"}, headers=AUTH
        )
        assert again.status_code == 409 and "not suppressed" in again.text
        not_mail = api.post("/api/bounces/ingest", content=b"\x89PNG\r\n", headers=AUTH)
        assert not_mail.status_code == 422

        # Erase over the API; the CLI then finds nobody.
        erased = api.post(
            "/api/subscribers/erase", json={"email": "reader1@example.net"}, headers=AUTH
        )
        assert erased.json() == {"email": "reader1@example.net", "erased": True, "suppressed": True}
        gone = app.run("subscribers", "erase", "reader1@example.net", check=False)
        assert gone.returncode == 2 and "no subscriber" in gone.stderr
