"""The `newsletter` command as an operator types it: exit codes, messages, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


@pytest.fixture
def store(database: str) -> str:
    """A migrated database (SQLite and PostgreSQL) with one list."""
    assert cli("lists", "create", "morning", "--name", "Morning Briefing").returncode == 0
    return database


def records() -> list[dict]:
    result = cli("subscribers", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_lists_are_created_and_listed_as_json(store: str):
    made = cli(
        "lists",
        "create",
        "weekly",
        "--name",
        "The Weekly",
        "--schedule",
        "0 7 * * 1",
        "--timezone",
        "Europe/Kyiv",
    )
    assert made.returncode == 0
    rows = json.loads(cli("lists", "list", "--json").stdout)
    assert {
        "slug": "weekly",
        "name": "The Weekly",
        "schedule": "0 7 * * 1",
        "timezone": "Europe/Kyiv",
    } in rows


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lists", "create", "Bad Slug", "--name", "X"], "lower-case letters"),
        (["lists", "create", "morning", "--name", "Again"], "exists already"),
        (["lists", "create", "x", "--name", "X", "--schedule", "every day"], "not a cron"),
        (["lists", "create", "x", "--name", "X", "--timezone", "Mars/Base"], "time zone"),
        (["subscribers", "add", "nobody", "--list", "morning"], "not a valid e-mail"),
        (["subscribers", "add", "a@example.org", "--list", "nope"], "no newsletter called"),
        (["subscribers", "list", "--list", "nope"], "no newsletter called"),
        (["subscribers", "erase", "ghost@example.org"], "no subscriber"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line_and_changes_nothing(
    store: str, args: list[str], message: str
):
    before = cli("lists", "list", "--json").stdout, records()
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert (cli("lists", "list", "--json").stdout, records()) == before


def test_subscribers_list_shows_status_and_subscriptions(store: str):
    cli(
        "subscribers", "add", "Ana@Example.org", "--list", "morning", "--name", "Ana", "--confirmed"
    )
    cli("subscribers", "add", "ben@example.org", "--list", "morning")
    rows = {r["email"]: r for r in records()}
    assert rows["ana@example.org"]["status"] == "active"
    assert rows["ana@example.org"]["name"] == "Ana"
    assert rows["ana@example.org"]["subscriptions"] == {"morning": "confirmed"}
    assert rows["ben@example.org"]["subscriptions"] == {"morning": "unconfirmed"}


def test_import_reads_email_and_name_and_reports_bad_rows(store: str, tmp_path: Path):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,name\nzoe@example.org,Zoë\nnot-an-email,X\nZOE@example.org,\n")
    result = cli("subscribers", "import", str(csv_file), "--list", "morning", "--confirmed")
    assert result.returncode == 0, result.stderr
    assert "added 1" in result.stdout and "invalid 1" in result.stdout
    assert "line 3" in result.stderr
    assert [(r["email"], r["name"]) for r in records()] == [("zoe@example.org", "Zoë")]


def test_export_writes_csv_and_json(store: str):
    cli("subscribers", "add", "a@example.org", "--list", "morning", "--confirmed")
    csv_out = cli("subscribers", "export").stdout.splitlines()
    assert csv_out[0] == "email,name,status,subscriptions,language,timezone,attributes"
    assert csv_out[1] == "a@example.org,,active,morning:confirmed,,,{}"
    assert json.loads(cli("subscribers", "export", "--json").stdout)[0]["email"] == "a@example.org"


def test_erase_removes_the_person_and_keeps_them_from_being_reimported(store: str, tmp_path: Path):
    cli(
        "subscribers",
        "add",
        "gone@example.org",
        "--list",
        "morning",
        "--name",
        "Gone",
        "--confirmed",
    )
    erased = cli("subscribers", "erase", "Gone@Example.org")
    assert erased.returncode == 0
    assert records() == []
    csv_file = tmp_path / "old.csv"
    csv_file.write_text("email,name\ngone@example.org,Gone\n")
    again = cli("subscribers", "import", str(csv_file), "--list", "morning", "--confirmed")
    assert "skipped 1" in again.stdout and "line 2: gone@example.org: erased" in again.stderr
    assert records() == []
    refused = cli("subscribers", "add", "gone@example.org", "--list", "morning", "--confirmed")
    assert refused.returncode == 2 and "suppressed" in refused.stderr
    from sqlalchemy import select, text

    from newsletter.db import session_scope
    from newsletter.models import Suppression

    with session_scope() as session:
        hashes = session.scalars(select(Suppression.email_hash)).all()
        dump = " ".join(
            str(v) for row in session.execute(text("SELECT * FROM suppressions")) for v in row
        )
    assert len(hashes) == 1 and "gone" not in dump  # anonymous: no address is kept


def test_a_malformed_setting_is_one_line_at_start_up(tmp_path: Path):
    bad = cli("lists", "list", env={"NEWSLETTER_SMTP_URL": "http://mail.example.org"})
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "Error: configuration error: NEWSLETTER_SMTP_URL: scheme must be one of smtp, "
        "smtp+starttls, smtps, got 'http'"
    ]


def test_a_database_driver_the_service_does_not_install_is_one_line(tmp_path: Path):
    for command in (("lists", "list"), ("web", "--port", "1")):
        bad = cli(
            *command,
            env={"NEWSLETTER_DATABASE_URL": "postgresql+psycopg2://news@127.0.0.1/news"},
            cwd=tmp_path,
        )
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.strip().splitlines() == [
            "Error: configuration error: NEWSLETTER_DATABASE_URL: the psycopg2 driver is not "
            "supported: use postgresql:// (psycopg) or sqlite://"
        ]


def test_a_worker_option_out_of_range_is_one_line_not_a_traceback(tmp_path: Path):
    for args, named in (
        (("--loglevel", "LOUD"), "'--loglevel'"),
        (("--concurrency", "0"), "'--concurrency'"),
    ):
        bad = cli("worker", *args, cwd=tmp_path)
        assert bad.returncode == 2, bad.stderr
        last = bad.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: Invalid value for") and named in last
        assert "Traceback" not in bad.stderr
    assert not (tmp_path / "var").exists()  # nothing started, nothing written


def test_production_mode_names_every_missing_setting(tmp_path: Path):
    result = cli("db", "upgrade", env={"NEWSLETTER_ENV": "production"}, cwd=tmp_path)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line
    for name in (
        "NEWSLETTER_DATABASE_URL",
        "NEWSLETTER_SMTP_URL",
        "NEWSLETTER_SECRET_KEY",
        "NEWSLETTER_ADMIN_TOKEN",
        "NEWSLETTER_FROM",
        "NEWSLETTER_BROKER_URL",
    ):
        assert name in line


def test_settings_come_from_a_dotenv_file(tmp_path: Path):
    (tmp_path / ".env").write_text("NEWSLETTER_SMTP_URL=smtps://user:pw@mail.example.org\n")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / ".env").write_text("NEWSLETTER_BASE_URL=ftp://x\n")
    assert cli("lists", "list", cwd=tmp_path).returncode in (0, 1)  # valid: runs
    result = cli("lists", "list", cwd=bad)
    assert result.returncode == 2 and "NEWSLETTER_BASE_URL" in result.stderr


def test_an_unreachable_database_is_a_service_failure_not_a_traceback(tmp_path: Path):
    result = cli(
        "lists", "list", env={"NEWSLETTER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    )
    assert result.returncode == 1
    assert "database unreachable" in result.stderr and "Traceback" not in result.stderr


def test_list_audience_options_are_set_checked_and_shown(store: str):
    made = cli(
        "lists", "update", "morning", "--local-time", "07:00", "--welcome", "--track-clicks",
        "--sunset-after", "4", "--form-field", "city:Your city!", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    shown = json.loads(made.stdout)
    assert shown["local_time"] == "07:00" and shown["welcome"] is True
    assert shown["sunset_after"] == 4 and shown["track_clicks"] is True
    assert shown["form_fields"] == [{"name": "city", "label": "Your city", "required": True}]
    # Bad input: one line, exit 2, nothing changed.
    for args, says in (
        (["--local-time", "25:00"], "not a time of day"),
        (["--weekly", "every monday"], "not a cron expression"),
        (["--no-track-clicks"], "sunset needs click tracking"),
        (["--form-field", "Email"], "not an attribute name"),
    ):
        refused = cli("lists", "update", "morning", *args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert says in refused.stderr and "Traceback" not in refused.stderr
    after = json.loads(cli("lists", "list", "--json").stdout)
    assert [r for r in after if r["slug"] == "morning"][0]["local_time"] == "07:00"
    assert [r for r in after if r["slug"] == "morning"][0]["track_clicks"] is True
