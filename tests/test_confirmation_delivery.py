"""The confirmation mail is not lost when the SMTP server is away for a while."""

from __future__ import annotations

from pathlib import Path

from tests.services import AppProcesses, SmtpServer


def test_confirmation_is_retried_until_the_smtp_server_answers(tmp_path: Path):
    server = SmtpServer()  # not started yet: connections are refused
    env = {
        "NEWSLETTER_DATA_DIR": str(tmp_path / "data"),
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'newsletter.db'}",
        "NEWSLETTER_SMTP_URL": server.url,
    }
    app = AppProcesses(env, tmp_path)
    try:
        app.run("db", "upgrade")
        app.run("lists", "create", "morning", "--name", "Morning")
        app.start_worker("--concurrency", "1")
        added = app.run("subscribers", "add", "patient@example.org", "--list", "morning")
        assert "pending" in added.stdout
        app.wait_log("worker", "Retry in")  # the first attempt failed against the closed port
        server.start()
        (mail,) = server.wait_for(lambda m: len(m) >= 1, timeout=60)
        assert mail.rcpt_tos == ["patient@example.org"]
    finally:
        app.stop()
        if server.controller._thread is not None:  # started
            server.stop()
