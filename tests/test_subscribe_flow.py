"""The whole reader path over real HTTP, a real SMTP server and a real Celery worker.

Runs on the embedded default (SQLite + file-system broker) and on PostgreSQL + Redis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import AppProcesses, SmtpServer, postgres_database, redis_database


@pytest.fixture(params=["embedded", "postgres+redis"])
def app(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SmtpServer
) -> Iterator[AppProcesses]:
    env = {"NEWSLETTER_DATA_DIR": str(tmp_path / "data"), "NEWSLETTER_SMTP_URL": smtp_server.url}
    if request.param == "embedded":
        env["NEWSLETTER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'data' / 'newsletter.db'}"
        yield from _running(env, tmp_path)
    else:
        with postgres_database() as db_url, redis_database() as broker:
            env["NEWSLETTER_DATABASE_URL"] = db_url
            env["NEWSLETTER_BROKER_URL"] = broker
            yield from _running(env, tmp_path)


def _running(env: dict[str, str], workdir: Path) -> Iterator[AppProcesses]:
    procs = AppProcesses(env, workdir)
    try:
        procs.run("db", "upgrade")
        procs.run("lists", "create", "morning", "--name", "Morning Briefing")
        procs.start_web()
        procs.start_worker("--concurrency", "1")
        yield procs
    finally:
        procs.stop()


def subscriptions_of(app: AppProcesses, email: str) -> dict[str, str]:
    rows = json.loads(app.run("subscribers", "list", "--json").stdout)
    return next((r["subscriptions"] for r in rows if r["email"] == email), {})


def test_reader_subscribes_confirms_by_mail_and_leaves(app: AppProcesses, smtp_server: SmtpServer):
    with httpx.Client(base_url=app.base_url, timeout=10) as browser:
        form = browser.get("/subscribe")
        assert form.status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        done = browser.post(
            "/subscribe",
            data={
                "email": "Reader@Example.org",
                "name": "Zoë O'Brien",
                "list": "morning",
                "csrf_token": token,
                "website": "",
            },
        )
        assert done.status_code == 200
        assert "Check your inbox" in done.text

        # The worker, not the request, sends the confirmation through SMTP.
        (mail,) = smtp_server.wait_for(lambda m: len(m) >= 1)
        msg = mail.message
        assert mail.rcpt_tos == ["reader@example.org"]
        assert msg["Subject"] == "Please confirm your subscription to Morning Briefing"
        assert msg["To"].addresses[0].display_name == "Zoë O'Brien"
        assert msg["Message-ID"] and msg["Date"]
        assert msg.get_content_type() == "multipart/alternative"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "probably you" in text and "127.0.0.1" in text  # who asked, from where
        assert "ignore this message" in text  # and what happens if the reader does
        assert html.startswith("<!DOCTYPE html>") and "Zoë O'Brien" in html
        assert 'style="' in html  # CSS inlined for clients that drop <style>
        link = re.search(r"(http://127\.0\.0\.1:\d+/confirm/\S+)", text).group(1)
        assert link in html

        # Mail scanners fetch links: a GET shows a button and changes nothing.
        page = browser.get(link)
        assert page.status_code == 200 and "Yes, subscribe me" in page.text
        assert subscriptions_of(app, "reader@example.org") == {"morning": "unconfirmed"}

        confirmed = browser.post(link)
        assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
        assert subscriptions_of(app, "reader@example.org") == {"morning": "confirmed"}
        assert "already" in browser.post(link).text  # confirming twice is harmless

        unsub = re.search(r'href="(/unsubscribe/[^"]+)"', confirmed.text).group(1)
        assert "Unsubscribe" in browser.get(unsub).text
        assert subscriptions_of(app, "reader@example.org") == {"morning": "confirmed"}

    # A mailbox provider's RFC 8058 one-click POST: no cookie, no CSRF token.
    one_click = httpx.post(
        app.base_url + unsub,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200
    assert subscriptions_of(app, "reader@example.org") == {"morning": "unsubscribed"}
    assert len(smtp_server.messages) == 1  # nothing but the confirmation was ever sent


def test_several_web_processes_share_the_sign_ups_and_the_limits(
    tmp_path: Path, smtp_server: SmtpServer
):
    """`newsletter web --workers 2`: either process takes a form; the limits are one."""
    env = {
        "NEWSLETTER_DATA_DIR": str(tmp_path / "data"),
        "NEWSLETTER_SMTP_URL": smtp_server.url,
        "NEWSLETTER_SUBSCRIBE_LIMIT_ADDRESS": "2",
    }
    with postgres_database() as db_url, redis_database() as broker:
        env["NEWSLETTER_DATABASE_URL"] = db_url
        env["NEWSLETTER_BROKER_URL"] = broker
        procs = AppProcesses(env, tmp_path)
        try:
            procs.run("db", "upgrade")
            procs.run("lists", "create", "morning", "--name", "Morning Briefing")
            procs.start_web("--workers", "2")
            procs.start_worker("--concurrency", "1")
            codes = []
            for i in range(8):  # a new connection each: the kernel spreads them over both
                with httpx.Client(base_url=procs.base_url, timeout=10) as browser:
                    token = re.search(
                        r'name="csrf_token" value="([^"]+)"', browser.get("/subscribe").text
                    ).group(1)
                    email = "same@example.org" if i < 3 else f"r{i}@example.org"
                    answer = browser.post(
                        "/subscribe", data={"email": email, "list": "morning", "csrf_token": token}
                    )
                    codes.append(answer.status_code)
            assert codes == [200, 200, 429, 200, 200, 200, 200, 200]
            mails = smtp_server.wait_for(lambda m: len(m) >= 6)
            assert sorted(m.rcpt_tos[0] for m in mails) == sorted(
                ["same@example.org"] + [f"r{i}@example.org" for i in range(3, 8)]
            )
        finally:
            procs.stop()


def test_several_web_processes_need_redis_for_the_limits(tmp_path: Path):
    procs = AppProcesses({"NEWSLETTER_DATA_DIR": str(tmp_path / "data")}, tmp_path)
    done = procs.run("web", "--workers", "2", check=False)
    assert done.returncode == 2
    assert "needs Redis" in done.stderr
