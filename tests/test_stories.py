"""Stories in: the sample page, Markdown, JSON and feeds become stories; bad input stores none."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from newsletter.cli import main
from newsletter.db import session_scope
from newsletter.models import Story
from newsletter.stories.store import story_paragraphs
from newsletter.subscriptions.lists import create_list

FIXTURES = Path(__file__).parent / "fixtures" / "stories"
SAMPLE = FIXTURES / "bakhmut.txt"
HEADLINE = "Ukraine vows to defend Bakhmut as Russian grip tightens"
LEDE = (
    "Ukrainian troops will keep defending the eastern city of Bakhmut and reinforcements "
    "will be sent in, President Volodymyr Zelenskiy says, apparently prolonging the war's "
    "bloodiest battle in a bid to break Moscow's assault force."
)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def stories() -> list[Story]:
    with session_scope() as session:
        return list(session.scalars(select(Story).order_by(Story.id)))


def count() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count(Story.id))) or 0)


@pytest.fixture
def daily(database: str) -> str:
    with session_scope() as session:
        create_list(session, "daily", "The Daily Brief")
    return "daily"


def test_sample_page_becomes_one_story_without_the_banner(daily: str) -> None:
    result = run("stories", "add", str(SAMPLE), "--list", daily)
    assert result.exit_code == 0, result.output
    [story] = stories()
    assert story.title == HEADLINE
    assert story.lede == LEDE
    paragraphs = story_paragraphs(story)
    assert len(paragraphs) == 25
    assert paragraphs[-1].startswith("\"I want us all in unity to respond to his words: 'Glory")
    everything = "\n".join([story.title, *paragraphs])
    assert "SIGN UP" not in everything and "delivered straight" not in everything
    assert '"The command unanimously supported" the decision not to withdraw' in everything
    assert 'A voice is heard saying "die, b**ch" in Russian' in everything
    assert story.slug == "ukraine-vows-to-defend-bakhmut-as-russian-grip-tightens"


def test_adding_the_same_file_twice_stores_it_once(daily: str) -> None:
    assert run("stories", "add", str(SAMPLE)).exit_code == 0
    again = run("stories", "add", str(SAMPLE))
    assert again.exit_code == 0
    assert "already stored" in again.output
    assert count() == 1


def test_markdown_front_matter_keeps_curly_quotes_and_emoji(daily: str) -> None:
    result = run("stories", "add", str(FIXTURES / "harbour.md"), "--json")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.output)["added"]
    assert record["title"] == "Harbour “reopens” after storm — fishermen cheer 🎣"
    [story] = stories()
    assert story.url == "https://news.example.com/2026/11/harbour-reopens"
    assert story.author == "Maria Keller"
    assert story.image == "https://news.example.com/img/harbour.jpg"
    assert story.published_at.isoformat() == "2026-11-24T08:30:00+00:00"
    assert story.lede.startswith("The harbour of Port Elan reopened")
    assert '"We lost three days, not the season," said the harbour master' in story.body


def test_json_array_adds_every_story(daily: str) -> None:
    result = run("stories", "add", str(FIXTURES / "council.json"), "--list", daily)
    assert result.exit_code == 0, result.output
    titles = [s.title for s in stories()]
    assert titles == ["Council votes to keep the night buses", "Library extends Sunday hours"]
    council = stories()[0]
    assert story_paragraphs(council)[2] == "The lines cost €2.1m a year, the transport office says."
    assert council.published_at.isoformat() == "2026-11-24T17:00:00+00:00"


def test_same_headline_gets_a_second_slug(daily: str, tmp_path: Path) -> None:
    for n in (1, 2):
        (tmp_path / f"{n}.txt").write_text(f"Storm warning\n\nStory number {n}.\n")
    assert run("stories", "add", str(tmp_path / "1.txt"), str(tmp_path / "2.txt")).exit_code == 0
    assert [s.slug for s in stories()] == ["storm-warning", "storm-warning-2"]


BAD_FILES = {
    "empty.txt": "is empty",
    "binary.bin": "is a binary file",
    "no-headline.txt": "has no headline",
    "missing.txt": "no such file",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_refused_by_name_and_nothing_is_stored(daily: str, name: str) -> None:
    # A good file first: the batch is all or nothing.
    result = run("stories", "add", str(SAMPLE), str(FIXTURES / name))
    assert result.exit_code == 2
    assert name in result.output and BAD_FILES[name] in result.output
    assert "Traceback" not in result.output
    assert count() == 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"title": "A", "lede": "B",', "is not valid JSON"),
        ('[{"lede": "no title here"}]', "has no headline"),
        ("---\ntitle: T\npublished: someday\n---\nText.\n", "'published' is not a date"),
        ("---\nauthor: Someone\n---\nJust a paragraph.\n", "has no headline"),
        ('{"title": "A", "url": "javascript:alert(1)"}', "'url' must be an http(s) URL"),
    ],
)
def test_bad_structured_input_is_refused(
    daily: str, tmp_path: Path, content: str, problem: str
) -> None:
    suffix = ".json" if content.startswith(("{", "[")) else ".md"
    path = tmp_path / f"story{suffix}"
    path.write_text(content)
    result = run("stories", "add", str(path))
    assert result.exit_code == 2
    assert str(path) in result.output and problem in result.output
    assert count() == 0


def test_unknown_list_is_bad_input(daily: str) -> None:
    result = run("stories", "add", str(SAMPLE), "--list", "weekly")
    assert result.exit_code == 2
    assert "weekly" in result.output
    assert count() == 0


def test_rss_feed_imports_entries_once(daily: str) -> None:
    first = run("stories", "import-feed", str(FIXTURES / "feed.rss"), "--list", daily)
    assert first.exit_code == 0, first.output
    assert "Example News: 2 added, 0 already stored" in first.output
    again = run("stories", "import-feed", str(FIXTURES / "feed.rss"))
    assert "0 added, 2 already stored" in again.output
    bridge, markets = stories()
    assert bridge.title == "Bridge repairs finish early"
    assert bridge.guid == "example-news-1001"
    assert bridge.image == "https://news.example.com/img/bridge.jpg"
    assert story_paragraphs(bridge) == [
        "The river bridge reopens a week ahead of plan.",
        "Crews worked at night to finish the deck.",
    ]
    assert markets.lede == 'Shares ended the day "flat" after a quiet session.'
    assert "alert" not in markets.body + markets.lede


def test_atom_feed_imports_with_author_and_date(daily: str) -> None:
    result = run("stories", "import-feed", str(FIXTURES / "feed.atom"))
    assert result.exit_code == 0, result.output
    [comet] = stories()
    assert comet.author == "Ada Park"
    assert comet.url == "https://science.example.org/comet"
    assert comet.published_at.isoformat() == "2026-11-24T12:00:00+00:00"
    assert story_paragraphs(comet)[1] == "Binoculars help, but they are not needed."


@pytest.mark.parametrize("name", ["broken.rss", "bakhmut.txt", "empty.txt"])
def test_feed_that_does_not_parse_is_refused(daily: str, name: str) -> None:
    result = run("stories", "import-feed", str(FIXTURES / name))
    assert result.exit_code == 2
    assert name in result.output
    assert count() == 0


@pytest.fixture
def feed_server(tmp_path: Path) -> Iterator[str]:
    shutil.copy(FIXTURES / "feed.atom", tmp_path / "feed.atom")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_feed_is_fetched_from_a_url(sqlite_db: str, feed_server: str) -> None:
    assert run("stories", "import-feed", f"{feed_server}/feed.atom").exit_code == 0
    assert [s.title for s in stories()] == ["Comet visible to the naked eye this week"]
    missing = run("stories", "import-feed", f"{feed_server}/nothing.xml")
    assert missing.exit_code == 2
    assert "nothing.xml" in missing.output and "could not be fetched" in missing.output


def test_operator_adds_and_lists_stories_from_the_shell(sqlite_db: str, tmp_path: Path) -> None:
    def newsletter(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            env=dict(os.environ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    added = newsletter("stories", "add", str(SAMPLE), str(FIXTURES / "harbour.md"))
    assert added.returncode == 0, added.stderr
    assert f"added ukraine-vows-to-defend-bakhmut-as-russian-grip-tightens: {HEADLINE}" in (
        added.stdout
    )
    listed = json.loads(newsletter("stories", "list", "--json").stdout)
    assert sorted(r["title"] for r in listed)[1] == HEADLINE
    sample = next(r for r in listed if r["title"] == HEADLINE)
    assert sample["paragraphs"] == 25
    assert sample["page_url"].endswith(f"/stories/{sample['slug']}")
    bad = newsletter("stories", "add", str(FIXTURES / "empty.txt"))
    assert bad.returncode == 2
    assert "empty.txt: is empty" in bad.stderr
