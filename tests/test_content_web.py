"""Story pages, the archive and the content admin API, over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.db import session_scope
from newsletter.models import Digest, DigestStatus, Story
from newsletter.subscriptions.lists import create_list

FIXTURES = Path(__file__).parent / "fixtures" / "stories"
SAMPLE = FIXTURES / "bakhmut.txt"
HEADLINE = "Ukraine vows to defend Bakhmut as Russian grip tightens"
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    from tests.conftest import reset_caches

    monkeypatch.setenv("NEWSLETTER_ADMIN_TOKEN", TOKEN)
    reset_caches()
    with session_scope() as session:
        create_list(session, "daily", "The Daily Brief")
    from newsletter.web.app import create_app

    return TestClient(create_app())


def post_story(client: TestClient, body: bytes, mime: str, **params: str) -> dict:
    response = client.post(
        "/api/stories", content=body, headers={**AUTH, "Content-Type": mime}, params=params
    )
    assert response.status_code == 201, response.text
    return response.json()


def stored() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count(Story.id))) or 0)


def test_sample_posted_as_text_gets_a_public_page(client: TestClient) -> None:
    added = post_story(client, SAMPLE.read_bytes(), "text/plain", list="daily")["added"]
    assert [a["title"] for a in added] == [HEADLINE]
    page = client.get(f"/stories/{added[0]['slug']}")
    assert page.status_code == 200
    assert f"<h1>{HEADLINE}</h1>" in page.text
    assert "Ukrainian forces have dug trenches further west" in page.text
    assert page.text.count("<p") >= 25
    assert "SIGN UP" not in page.text


def test_markdown_and_json_bodies_are_stories(client: TestClient) -> None:
    md = post_story(client, (FIXTURES / "harbour.md").read_bytes(), "text/markdown")
    assert md["added"][0]["author"] == "Maria Keller"
    js = post_story(client, (FIXTURES / "council.json").read_bytes(), "application/json")
    assert [a["slug"] for a in js["added"]] == [
        "council-votes-to-keep-the-night-buses",
        "library-extends-sunday-hours",
    ]
    listed = client.get("/api/stories", headers=AUTH).json()
    assert len(listed) == 3
    page = client.get("/stories/harbour-reopens-after-storm-fishermen-cheer")
    assert "Harbour “reopens” after storm — fishermen cheer 🎣" in page.text


def test_story_with_a_script_shows_it_as_text(client: TestClient) -> None:
    body = b'{"title": "<script>alert(1)</script> Evil", "lede": "Fine <b>bold</b> & co"}'
    [added] = post_story(client, body, "application/json")["added"]
    page = client.get(f"/stories/{added['slug']}")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Evil" in page.text
    assert "Fine &lt;b&gt;bold&lt;/b&gt; &amp; co" in page.text


@pytest.mark.parametrize(
    ("body", "mime", "problem"),
    [
        (b"", "text/plain", "request body: is empty"),
        (b"\x00\x01\x02binary", "application/octet-stream", "request body: is a binary file"),
        (b'{"lede": "no headline"}', "application/json", "request body: has no headline"),
        (b"[1, 2", "application/json", "request body: is not valid JSON"),
    ],
)
def test_bad_story_bodies_get_a_4xx_message(
    client: TestClient, body: bytes, mime: str, problem: str
) -> None:
    response = client.post("/api/stories", content=body, headers={**AUTH, "Content-Type": mime})
    assert response.status_code == 422
    assert response.json()["detail"][0]["message"].startswith(problem)
    assert stored() == 0


def test_admin_routes_need_the_token(client: TestClient) -> None:
    assert client.post("/api/stories", content=SAMPLE.read_bytes()).status_code == 401
    assert client.get("/api/stories").status_code == 401
    assert client.post("/api/digests", json={"list": "daily"}).status_code == 401
    bad = {"Authorization": "Bearer wrong"}
    assert client.post("/api/digests", json={"list": "daily"}, headers=bad).status_code == 401
    assert stored() == 0


def test_unknown_story_is_a_404_page(client: TestClient) -> None:
    response = client.get("/stories/no-such-story")
    assert response.status_code == 404
    assert "There is no story at this address." in response.text


def test_digest_draft_over_the_api_and_the_archive(client: TestClient) -> None:
    none = client.post("/api/digests", json={"list": "daily"}, headers=AUTH)
    assert none.status_code == 409
    assert "no new stories" in none.json()["detail"]
    unknown = client.post("/api/digests", json={"list": "weekly"}, headers=AUTH)
    assert unknown.status_code == 404 and "weekly" in unknown.text

    post_story(client, SAMPLE.read_bytes(), "text/plain")
    created = client.post("/api/digests", json={"list": "daily"}, headers=AUTH)
    assert created.status_code == 201, created.text
    digest = created.json()
    assert digest["status"] == "draft"
    assert digest["subject"] == f"The Daily Brief: {HEADLINE}"
    assert 0 < digest["html_bytes"] < 102 * 1024

    # A draft is not public.
    assert client.get(f"/archive/{digest['id']}").status_code == 404
    assert digest["subject"] not in client.get("/archive").text

    with session_scope() as session:
        row = session.get(Digest, digest["id"])
        assert row is not None
        row.status = DigestStatus.sent
    archive = client.get("/archive")
    assert archive.status_code == 200
    assert f'href="/archive/{digest["id"]}"' in archive.text
    issue = client.get(f"/archive/{digest['id']}")
    assert issue.status_code == 200
    assert HEADLINE in issue.text
    assert 'href="/stories/ukraine-vows-to-defend-bakhmut-as-russian-grip-tightens"' in issue.text
    assert client.get("/archive/999999").status_code == 404


def test_the_archive_teaser_reads_as_text_without_reference_numbers(client: TestClient) -> None:
    """A lede with a link is stored with a numbered reference for the mail's text part;
    the archive page shows the words a reader reads, not "[1]"."""
    story = (
        b"---\ntitle: Power back in the east\n---\n\n"
        b"Crews restored power overnight; see the [outage map](https://grid.example.org/map).\n"
    )
    post_story(client, story, "text/markdown")
    created = client.post("/api/digests", json={"list": "daily"}, headers=AUTH)
    assert created.status_code == 201, created.text
    with session_scope() as session:
        row = session.get(Digest, created.json()["id"])
        assert row is not None
        row.status = DigestStatus.sent
    issue = client.get(f"/archive/{created.json()['id']}")
    assert "Crews restored power overnight; see the outage map." in issue.text
    assert "[1]" not in issue.text
