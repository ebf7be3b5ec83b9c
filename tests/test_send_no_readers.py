"""`digest send` to a list nobody would receive says so, exits 2 (409 over the API), and
uses no stories up: once someone confirms, the next digest still carries them."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.db import session_scope
from newsletter.models import Digest, MailingList, Subscriber, Subscription
from tests.send_support import send_env
from tests.services import AppProcesses

TOKEN = "admin-token-for-the-tests-0123456789"
STORY = "Water is back in the east\n\nThe city restored supply to 40,000 homes on Monday.\n"


def _list_with_nobody_to_send_to() -> None:
    with session_scope() as session:
        mlist = MailingList(slug="news", name="The Newsroom Daily")
        session.add(mlist)
        session.flush()
        for email, status in (
            ("pending@example.org", "unconfirmed"),
            ("left@example.org", "unsubscribed"),
        ):
            person = Subscriber(email=email, name="")
            session.add(person)
            session.flush()
            session.add(Subscription(list_id=mlist.id, subscriber_id=person.id, status=status))
        bounced = Subscriber(email="gone@example.org", name="", status="bounced")
        session.add(bounced)
        session.flush()
        session.add(Subscription(list_id=mlist.id, subscriber_id=bounced.id, status="confirmed"))


def _digests() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Digest)) or 0)


def test_send_to_a_list_with_no_confirmed_readers_is_refused_and_uses_no_stories(
    database: str, data_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    _list_with_nobody_to_send_to()
    env = send_env(data_dir, "smtp://127.0.0.1:9", database, None)
    env["NEWSLETTER_ADMIN_TOKEN"] = TOKEN
    app = AppProcesses(env, tmp_path)
    story = tmp_path / "story.txt"
    story.write_text(STORY)
    app.run("stories", "add", str(story), "--list", "news")

    refused = app.run("digest", "send", "--list", "news", "--json", check=False)
    assert refused.returncode == 2, refused.stderr
    assert refused.stdout == ""
    assert "no confirmed subscribers" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert _digests() == 0

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from tests.conftest import reset_caches

    reset_caches()
    from newsletter.web.app import create_app

    with TestClient(create_app()) as client:
        answer = client.post(
            "/api/sends", json={"list": "news"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert answer.status_code == 409 and "no confirmed subscribers" in answer.text
    assert _digests() == 0

    # Someone confirms: the story is still new for the list.
    app.run("subscribers", "add", "reader@example.org", "--list", "news", "--confirmed")
    preview = json.loads(app.run("digest", "preview", "--list", "news", "--json").stdout)
    assert preview["stories"] == 1
