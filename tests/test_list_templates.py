"""A list's own templates: one block overridden changes only that block, in the preview
an operator runs; a template that would send an unlawful or clipped digest, does not
parse or reaches for Python's internals is refused with the reason, and nothing changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.db import session_scope
from newsletter.models import Digest, MailingList
from newsletter.stories.parse import parse_story_file
from newsletter.stories.store import store_stories
from tests.conftest import reset_caches

FIXTURES = Path(__file__).parent / "fixtures" / "stories"
HEADLINE = "Ukraine vows to defend Bakhmut as Russian grip tightens"
TOKEN = "admin-token-for-the-template-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXTENDS_HTML = '{% extends "builtin/digest/body.html" %}\n'
EXTENDS_TEXT = '{% extends "builtin/digest/body.txt" %}\n'
OWN_MASTHEAD = (
    EXTENDS_HTML + "{% block masthead %}\n"
    '<tr><td class="own-mast">THE HARBOUR GAZETTE, {{ list_name }}</td></tr>\n'
    "{% endblock %}\n"
)


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=cwd,
        timeout=60,
    )


def folder(root: Path, name: str, files: dict[str, str]) -> Path:
    path = root / name
    path.mkdir()
    for file, content in files.items():
        (path / file).write_text(content, encoding="utf-8")
    return path


def add_stories() -> None:
    drafts = parse_story_file(FIXTURES / "bakhmut.txt") + parse_story_file(FIXTURES / "harbour.md")
    now = datetime.now(UTC) - timedelta(hours=1)
    for d in drafts:
        d.published_at = now
    with session_scope() as session:
        store_stories(session, drafts, now=now)  # for every list


def preview(slug: str, tmp_path: Path) -> tuple[dict[str, object], str, str]:
    out = tmp_path / f"{slug}.html"
    shown = cli("digest", "preview", "--list", slug, "--out", str(out), "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout), out.read_text(), out.with_suffix(".txt").read_text()


def cut(html: str, start: str, end: str) -> tuple[str, str, str]:
    """html as (before start, from start to end, from end on)."""
    i = html.index(start)
    j = html.index(end, i)
    return html[:i], html[i:j], html[j:]


def test_a_list_folder_overriding_one_block_changes_only_that_block(
    database: str, tmp_path: Path
) -> None:
    own = folder(
        tmp_path,
        "harbour",
        {
            "body.html": OWN_MASTHEAD,
            "body.txt": EXTENDS_TEXT
            + "{% block masthead %}THE HARBOUR GAZETTE\n\n{% endblock %}\n",
            "subject.txt": "Gazette: {{ lead.title }}\n",
        },
    )
    assert cli("lists", "create", "plain", "--name", "The Brief").returncode == 0
    made = cli(
        "lists", "create", "own", "--name", "The Brief", "--template-dir", str(own), "--json"
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["template_dir"] == str(own.resolve())
    add_stories()

    plain, plain_html, plain_text = preview("plain", tmp_path)
    mine, own_html, own_text = preview("own", tmp_path)
    assert (plain["templates"], mine["templates"]) == ("built-in", str(own.resolve()))
    assert mine["subject"] == f"Gazette: {HEADLINE}"
    assert plain["subject"] == f"The Brief: {HEADLINE} and 1 more"
    # The masthead is the list's own; everything before and after it is the built-in one.
    assert "THE HARBOUR GAZETTE, The Brief" in own_html and "HARBOUR GAZETTE" not in plain_html
    p_before, p_mast, p_after = cut(plain_html, 'class="top"', 'class="lead')
    o_before, o_mast, o_after = cut(own_html, 'class="own-mast"', 'class="lead')
    assert "View in your browser" in p_mast and "<h1" in p_mast and "<h1" not in own_html
    same_title = p_before.replace(str(plain["subject"]), str(mine["subject"]))  # <title>
    assert same_title.rsplit("<tr>", 1)[0] == o_before.rsplit("<tr>", 1)[0]
    assert p_after == o_after  # the stories, the sections and the footer, byte for byte
    # The text part: only the masthead differs.
    assert own_text.startswith("THE HARBOUR GAZETTE\n\n1. " + HEADLINE)
    assert plain_text.startswith("The Brief · ")
    assert own_text.split("1. " + HEADLINE, 1)[1] == plain_text.split("1. " + HEADLINE, 1)[1]

    # Back to the built-in templates: the preview is the plain list's again.
    assert cli("lists", "update", "own", "--template-dir", "none").returncode == 0
    _, back_html, _ = preview("own", tmp_path)
    assert back_html == plain_html


REFUSED = {
    "no-unsubscribe": (
        {
            "body.html": EXTENDS_HTML + "{% block footer %}<tr><td>{{ postal_address }}</td></tr>"
            "{% endblock %}"
        },  # fmt: skip
        "body.html has no unsubscribe link",
    ),
    "no-postal-address": (
        {
            "body.txt": EXTENDS_TEXT + "{% block footer %}Unsubscribe: {{ unsubscribe_url }}\n"
            "{% endblock %}"
        },  # fmt: skip
        "body.txt does not show the postal address",
    ),
    "address-in-a-comment": (
        {
            "body.html": EXTENDS_HTML + '{% block footer %}<tr><td><a href="{{ unsubscribe_url }}">'
            "Leave</a><!-- {{ postal_address }} --></td></tr>"
            "{% endblock %}"
        },  # fmt: skip
        "body.html does not show the postal address",
    ),
    "too-big": (
        {
            "body.html": EXTENDS_HTML
            + "{% block masthead %}<tr><td>"
            + "Our long masthead. " * 6000
            + "</td></tr>{% endblock %}"
        },  # fmt: skip
        "over the 92,160-byte budget",
    ),
    "syntax-error": (
        {
            "body.html": EXTENDS_HTML + "{% block masthead %}\n<tr><td>{{ list_name }</td></tr>\n"
            "{% endblock %}"
        },  # fmt: skip
        "body.html, line 3: syntax error",
    ),
    "python-internals": (
        {"subject.txt": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
        "subject.txt, line 1: access to attribute '__class__' of 'str' object is unsafe",
    ),
    "extends-itself": (
        {"body.html": '{% extends "body.html" %}{% block masthead %}{% endblock %}'},
        "a template extends or includes itself",
    ),
    "function-globals": (
        {
            "body.txt": EXTENDS_TEXT + "{% block masthead %}{{ cycler.__init__.__globals__ }}"
            "{% endblock %}"
        },  # fmt: skip
        "access to attribute '__init__'",
    ),
}


def test_refused_templates_exit_2_with_one_line_and_change_nothing(
    sqlite_db: str, tmp_path: Path
) -> None:
    """The refusals through `lists create`, two through `lists update` (the API test
    below tries every one both ways, in-process)."""
    assert cli("lists", "create", "daily", "--name", "The Daily Brief").returncode == 0
    before = cli("lists", "list", "--json").stdout
    assert "template_dir" not in before
    for name, (files, reason) in REFUSED.items():
        if name in ("address-in-a-comment", "function-globals", "extends-itself"):
            continue  # in-process below: a command costs seconds
        bad = folder(tmp_path, name, files)
        tries = [("lists", "create", name, "--name", "New", "--template-dir", str(bad))]
        if name in ("no-unsubscribe", "python-internals"):
            tries.append(
                ("lists", "update", "daily", "--name", "Renamed", "--template-dir", str(bad))
            )
        for args in tries:
            result = cli(*args)
            assert result.returncode == 2, (name, result.stdout, result.stderr)
            assert reason in result.stderr, (name, result.stderr)
            assert str(bad) in result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    missing = cli("lists", "create", "x", "--name", "X", "--template-dir", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not a folder" in missing.stderr
    assert cli("lists", "list", "--json").stdout == before  # no list made, none renamed


def test_the_api_refuses_them_with_422_and_changes_nothing(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_ADMIN_TOKEN", TOKEN)
    reset_caches()
    from newsletter.web.app import create_app

    good = folder(tmp_path, "good", {"body.html": OWN_MASTHEAD})
    with TestClient(create_app()) as api:
        made = api.post("/api/lists", json={"slug": "daily", "name": "Daily"}, headers=AUTH)
        assert made.status_code == 201, made.text
        before = api.get("/api/lists", headers=AUTH).json()
        for name, (files, reason) in REFUSED.items():
            bad = folder(tmp_path, name, files)
            created = api.post(
                "/api/lists",
                json={"slug": name, "name": "New", "template_dir": str(bad)},
                headers=AUTH,
            )
            patched = api.patch(
                "/api/lists/daily", json={"name": "Renamed", "template_dir": str(bad)}, headers=AUTH
            )
            for answer in (created, patched):
                assert answer.status_code == 422, (name, answer.text)
                [detail] = answer.json()["detail"]
                assert detail["field"] == "template_dir" and reason in detail["message"]
            assert api.get("/api/lists", headers=AUTH).json() == before
        set_ = api.patch("/api/lists/daily", json={"template_dir": str(good)}, headers=AUTH)
        assert set_.status_code == 200 and set_.json()["template_dir"] == str(good.resolve())
        add_stories()
        shown = api.get("/api/digests/preview", params={"list": "daily"}, headers=AUTH)
        assert shown.status_code == 200, shown.text
        assert "THE HARBOUR GAZETTE, Daily" in shown.json()["html"]
        assert shown.json()["templates"] == str(good.resolve())
        cleared = api.patch("/api/lists/daily", json={"template_dir": ""}, headers=AUTH)
        assert cleared.status_code == 200 and "template_dir" not in cleared.json()


def test_a_template_changed_after_it_was_set_is_refused_when_composing(
    database: str, tmp_path: Path
) -> None:
    own = folder(tmp_path, "own", {"body.html": OWN_MASTHEAD})
    made = cli("lists", "create", "daily", "--name", "Daily", "--template-dir", str(own))
    assert made.returncode == 0, made.stderr
    add_stories()
    assert (
        cli("digest", "preview", "--list", "daily", "--out", str(tmp_path / "p.html")).returncode
        == 0
    )
    # Someone edits the folder afterwards and drops the unsubscribe link.
    (own / "body.html").write_text(
        EXTENDS_HTML + "{% block footer %}<tr><td>{{ postal_address }}</td></tr>{% endblock %}"
    )
    for args in (
        ("digest", "preview", "--list", "daily", "--out", str(tmp_path / "q.html")),
        ("digest", "compose", "--list", "daily"),
    ):
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stdout
        assert result.stderr.strip().endswith("body.html has no unsubscribe link "
                                              '(<a href="{{ unsubscribe_url }}">)')  # fmt: skip
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "q.html").exists()
    # A folder that went away is refused too, not replaced by the built-in templates.
    (own / "body.html").unlink()
    own.rmdir()
    gone = cli("digest", "preview", "--list", "daily", "--out", str(tmp_path / "r.html"))
    assert gone.returncode == 2 and "not there any more" in gone.stderr, gone.stderr
    with session_scope() as session:
        assert session.scalar(select(func.count(Digest.id))) == 0  # no draft half-written
        mlist = session.scalar(select(MailingList))
        assert mlist is not None and mlist.template_dir == str(own.resolve())
