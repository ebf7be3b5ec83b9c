"""`newsletter bounces ingest|list|unsuppress` and `GET /api/bounces`, as an operator uses
them: exit codes, messages naming the file, and the effect on the readers."""

from __future__ import annotations

import json
import mailbox
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsletter.bounces.report import KINDS
from newsletter.config import Settings
from tests.bounce_support import (
    FIXTURES,
    HANDWRITTEN,
    REAL,
    STATUS_AFTER,
    bounce_settings_fixture,  # noqa: F401 - the bounce_settings fixture
    is_suppressed,
    send_digest,
    subscriber_state,
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def _report() -> dict:
    result = cli("bounces", "list", "--json", "--limit", "1000")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ingesting_the_corpus_has_the_expected_effect_on_each_reader(
    bounce_settings: Settings, tmp_path: Path
) -> None:
    # Hand-written fixtures as .eml files; real ones (with distinct readers) as one mbox.
    handwritten = {n: w for n, w in HANDWRITTEN.items() if w["kind"] is not None}
    counts = Counter(e["recipient"] for e in REAL)
    real = [e for e in REAL if counts[e["recipient"]] == 1]
    box = mailbox.mbox(tmp_path / "old-bounces.mbox")
    for entry in real:
        box.add((FIXTURES / "real" / entry["file"]).read_bytes())
    box.flush()
    expected = {str(w["recipient"]): str(w["kind"]) for w in handwritten.values()}
    expected |= {e["recipient"]: e["class"] for e in real}
    send_digest(sorted(expected))

    files = [str(FIXTURES / name) for name in sorted(handwritten)]
    result = cli("bounces", "ingest", *files, str(tmp_path / "old-bounces.mbox"))
    assert result.returncode == 0, result.stderr
    assert f"{len(handwritten) + len(real)} bounce messages" in result.stdout

    wrong = {
        email: (kind, subscriber_state(email)[0])
        for email, kind in expected.items()
        if subscriber_state(email)[0] != STATUS_AFTER[kind]
    }
    assert wrong == {}
    for email, kind in expected.items():
        assert is_suppressed(email) == (kind in ("hard", "complaint")), email
    report = _report()
    kinds = Counter(expected.values())
    assert report["totals"] == {k: kinds[k] for k in KINDS}
    assert report["policy_by_domain"]

    again = cli("bounces", "ingest", *files)
    assert again.returncode == 0, again.stderr
    assert "duplicate" in again.stdout
    assert _report()["totals"] == report["totals"]


def test_bad_files_exit_2_naming_the_file_and_change_nothing(
    bounce_settings: Settings, tmp_path: Path
) -> None:
    (sent,) = send_digest(["reader1@example.net"])  # postfix-user-unknown.eml's reader
    good = str(FIXTURES / "postfix-user-unknown.eml")
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    letter = tmp_path / "letter.eml"
    letter.write_bytes(b"From: a@example.org\nSubject: hi\n\nNot a bounce.\n")
    cases = [
        (tmp_path / "missing.eml", "cannot be read"),
        (empty, "is empty"),
        (letter, "no bounce, complaint or auto-reply"),
        (FIXTURES / "malformed-truncated.eml", "no bounce, complaint or auto-reply"),
    ]
    for path, message in cases:
        result = cli("bounces", "ingest", good, str(path))
        assert result.returncode == 2, (path, result.stdout, result.stderr)
        assert str(path) in result.stderr and message in result.stderr
        assert "Traceback" not in result.stderr
    assert subscriber_state("reader1@example.net")[0] == "active"
    assert _report()["events"] == []


# Not mail at all: random bytes, a PNG, JSON. flufl.bounce's detectors crash on such
# input and used to log the crash with a full traceback before our one error line.
NOT_MAIL = {
    "random.bin": bytes(random.Random(5).randrange(256) for _ in range(4096)),
    "picture.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)),
    "event.json": json.dumps({"notificationType": "Bounce", "bounce": [1, 2]}).encode(),
}


@pytest.mark.parametrize("name", sorted(NOT_MAIL))
@pytest.mark.usefixtures("sqlite_db")
def test_a_file_that_is_not_mail_is_one_error_line_and_exit_2(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(NOT_MAIL[name])
    result = cli("bounces", "ingest", str(path))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()  # exactly one line: no traceback before it
    assert str(path) in line and "no bounce, complaint or auto-reply found" in line
    assert result.stdout == ""


def test_policy_blocks_are_listed_per_receiving_domain(
    bounce_settings: Settings,
) -> None:
    email = str(HANDWRITTEN["postfix-spamhaus-blocked.eml"]["recipient"])
    send_digest([email])
    assert cli("bounces", "ingest", str(FIXTURES / "postfix-spamhaus-blocked.eml")).returncode == 0
    result = cli("bounces", "list")
    assert result.returncode == 0
    domain = email.rpartition("@")[2]
    assert "policy blocks by receiving domain" in result.stdout
    assert f"  {domain}\t1\t" in result.stdout
    assert subscriber_state(email)[0] == "active"


def test_an_operator_lifts_a_suppression(bounce_settings: Settings) -> None:
    email = str(HANDWRITTEN["postfix-user-unknown.eml"]["recipient"])
    send_digest([email])
    cli("bounces", "ingest", str(FIXTURES / "postfix-user-unknown.eml"))
    assert is_suppressed(email)
    lifted = cli("bounces", "unsuppress", email)
    assert lifted.returncode == 0 and "suppression lifted" in lifted.stdout
    assert subscriber_state(email)[:2] == ("active", 0) and not is_suppressed(email)
    again = cli("bounces", "unsuppress", email)
    assert again.returncode == 2 and "is not suppressed" in again.stderr
    bad = cli("bounces", "unsuppress", "not-an-address")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.mark.usefixtures("bounce_settings")
def test_api_lists_bounces_for_the_admin_only() -> None:
    from newsletter.web.app import create_app
    from tests.conftest import get_settings

    email = str(HANDWRITTEN["gmail-no-such-user.eml"]["recipient"])
    send_digest([email])
    cli("bounces", "ingest", str(FIXTURES / "gmail-no-such-user.eml"))
    with TestClient(create_app()) as client:
        assert client.get("/api/bounces").status_code == 401
        auth = {"Authorization": f"Bearer {get_settings().admin}"}
        body = client.get("/api/bounces", headers=auth).json()
        assert [(e["email"], e["kind"], e["source"]) for e in body["events"]] == [
            (email, "hard", "ingest")
        ]
        assert body["totals"]["hard"] == 1
        assert client.get("/api/bounces?kind=bogus", headers=auth).status_code == 422
