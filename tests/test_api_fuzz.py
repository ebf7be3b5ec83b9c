"""Fuzzing every route of the app's own OpenAPI document: no input makes a server error.

Schemathesis (its command, as an operator would run it) reads /openapi.json of a real
`newsletter web` process and sends it generated requests with the admin token: the
documented examples, the boundaries of every stated constraint (coverage phase: the
longest string, the largest integer and one past it…) and random valid and invalid
input. The database is real and holds a list, a confirmed reader, a story and a draft
digest, so the requests reach the logic behind the validation; the SMTP server is real,
so a test send goes through and a 5xx can only be the app's fault.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.db import session_scope
from newsletter.models import Digest, MailingList, Story, Subscriber, Subscription
from tests.send_support import send_env
from tests.services import AppProcesses, SmtpServer

TOKEN = "admin-token-for-the-fuzzer-0123456789"


def _seed() -> None:
    with session_scope() as session:
        mlist = MailingList(slug="news", name="The Newsroom Daily")
        session.add(mlist)
        session.flush()
        reader = Subscriber(email="reader@example.org", name="Reader")
        session.add(reader)
        session.flush()
        session.add(Subscription(list_id=mlist.id, subscriber_id=reader.id, status="confirmed"))
        session.add(Story(slug="water-is-back", title="Water is back", lede="Supply returned."))
        session.add(Digest(list_id=mlist.id, subject="Today", html="<p>x</p>", text="x"))


@pytest.mark.timeout(900)
def test_no_input_makes_a_server_error(
    database: str, data_dir: Path, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    _seed()
    env = send_env(data_dir, smtp_server.url, database, None)
    env |= {"NEWSLETTER_ADMIN_TOKEN": TOKEN, "NEWSLETTER_SUBSCRIBE_LIMIT_IP": "1000000"}
    app = AppProcesses(env, tmp_path)
    try:
        base = app.start_web()
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{base}/openapi.json",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--checks",
                "not_a_server_error",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "15",
                "--seed",
                "20261130",
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=840,
            cwd=tmp_path,
        )
        out = run.stdout + run.stderr
        tested = re.search(r"Tested: (\d+)", out)
        assert tested and int(tested.group(1)) >= 30, out[-3000:]  # every operation ran
        assert run.returncode == 0, out[-6000:] + "\n--- web log ---\n" + app.log("web")[-4000:]
    finally:
        app.stop()


def test_an_id_past_the_database_range_is_a_clear_answer_not_a_crash(
    database: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the fuzzer: GET /archive/{id} with a number the database cannot hold
    answered 500. A reader gets the 404 page; the API says the id is out of range."""
    from fastapi.testclient import TestClient

    from newsletter.web.app import create_app
    from tests.conftest import reset_caches

    monkeypatch.setenv("NEWSLETTER_ADMIN_TOKEN", TOKEN)
    reset_caches()
    huge = str(2**70)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        page = client.get(f"/archive/{huge}")
        assert page.status_code == 404 and "no sent digest" in page.text.lower()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for path in (f"/api/sends/{huge}", f"/api/sends/{2**31}"):
            answer = client.get(path, headers=auth)
            assert answer.status_code == 422, (path, answer.text)
        assert client.post(f"/api/sends/{huge}/pause", headers=auth).status_code == 422
