"""Rich story bodies: bold, lists, links, sub-headings, quotes and images survive from
Markdown, feeds and JSON into the story page and the digest; the text part keeps lists
as lists and links as numbered references; excerpts end on a sentence; hostile markup
never survives anywhere a reader looks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from newsletter.cli import main
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.digests.compose import compose_digest
from newsletter.digests.entries import MAIL_PARAGRAPHS, SHORT_LEDE, story_entry
from newsletter.models import MailingList, Story
from newsletter.stories.drafts import make_draft
from newsletter.stories.store import get_story, story_paragraphs
from newsletter.subscriptions.lists import create_list
from tests.services import AppProcesses

NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)

STORM = """---
title: Storm cuts power to the east side
url: https://news.example.com/2026/11/storm
author: Lina Ortiz
published: 2026-11-24T08:00:00Z
image: https://news.example.com/img/storm.jpg
image_alt: A fallen tree across Mill Road
image_credit: Jonas Berg / Example News
section: City
---

The storm left **12,000 homes** without power overnight, and the utility's
[outage map](https://power.example.com/outages) still shows most of the east side dark.

Residents were asked to:

- boil tap water before drinking it
- keep off Mill Road, where *lines are down*
- report outages on the [outage map](https://power.example.com/outages)

## Repairs

> "We expect most homes back by Thursday," the utility said.

1. East side first
2. Then the harbour

![Crews on Mill Road](https://news.example.com/img/crews.jpg)

The council meets on Friday. See <https://city.example.com/agenda> and write to
[the clerk](mailto:clerk@city.example.com).
"""


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def story(slug: str) -> Story:
    with session_scope() as session:
        found = get_story(session, slug)
        assert found is not None
        session.expunge(found)
        return found


def entry(slug: str, *, short: bool = False) -> dict:
    return story_entry(story(slug), "https://mail.example.com", short=short)


@pytest.fixture
def daily(sqlite_db: str) -> str:
    with session_scope() as session:
        create_list(session, "daily", "The Daily Brief")
    return "daily"


def add_file(tmp_path: Path, name: str, content: str, *extra: str) -> None:
    (tmp_path / name).write_text(content)
    run("stories", "add", str(tmp_path / name), *extra)


# Markdown ------------------------------------------------------------------------------


def test_markdown_keeps_bold_lists_links_headings_quotes_and_images(
    database: str, tmp_path: Path
) -> None:
    add_file(tmp_path, "storm.md", STORM)
    storm = story("storm-cuts-power-to-the-east-side")
    html = storm.body_html
    assert "<strong>12,000 homes</strong>" in html
    assert (
        '<a href="https://power.example.com/outages" rel="noopener noreferrer">outage map</a>'
        in html
    )
    assert "<p>Residents were asked to:</p>\n<ul><li>boil tap water before drinking it</li>" in html
    assert "<em>lines are down</em>" in html
    assert "<h3>Repairs</h3>" in html
    assert '<blockquote><p>"We expect most homes back by Thursday," the utility said.</p>' in html
    assert "<ol><li>East side first</li><li>Then the harbour</li></ol>" in html
    assert '<img src="https://news.example.com/img/crews.jpg" alt="Crews on Mill Road">' in html
    assert '<a href="mailto:clerk@city.example.com" rel="noopener noreferrer">the clerk</a>' in html
    # The text: the lede, then paragraphs apart, a list one block, links numbered.
    assert storm.lede == (
        "The storm left 12,000 homes without power overnight, and the utility's "
        "outage map [1] still shows most of the east side dark."
    )
    assert story_paragraphs(storm)[1:] == [
        "Residents were asked to:",
        "- boil tap water before drinking it\n"
        "- keep off Mill Road, where lines are down\n"
        "- report outages on the outage map [1]",
        "Repairs",
        '> "We expect most homes back by Thursday," the utility said.',
        "1. East side first\n2. Then the harbour",
        "[Image: Crews on Mill Road]",
        "The council meets on Friday. See https://city.example.com/agenda and write to "
        "the clerk [2].",
        "[1] https://power.example.com/outages\n[2] mailto:clerk@city.example.com",
    ]
    assert (storm.image_alt, storm.image_credit, storm.section) == (
        "A fallen tree across Mill Road",
        "Jonas Berg / Example News",
        "City",
    )


def test_raw_html_in_markdown_is_shown_as_written(daily: str, tmp_path: Path) -> None:
    add_file(
        tmp_path,
        "raw.md",
        "# Raw markup\n\nWrite <b>bold</b> like this & <i>that</i>.\n\n<div>a block</div>\n",
    )
    raw = story("raw-markup")
    assert raw.body_html == (
        "<p>Write &lt;b&gt;bold&lt;/b&gt; like this &amp; &lt;i&gt;that&lt;/i&gt;.</p>\n"
        "<p>&lt;div&gt;a block&lt;/div&gt;</p>"
    )
    assert raw.lede == "Write <b>bold</b> like this & <i>that</i>."


def test_an_image_alone_at_the_top_of_markdown_is_the_lead_image(
    daily: str, tmp_path: Path
) -> None:
    add_file(
        tmp_path,
        "lead.md",
        "# Ferry returns\n\n![The ferry at the pier](https://news.example.com/f.jpg)\n\n"
        "The ferry runs again from Monday.\n",
    )
    ferry = story("ferry-returns")
    assert (ferry.image, ferry.image_alt) == (
        "https://news.example.com/f.jpg",
        "The ferry at the pier",
    )
    assert ferry.body_html == "<p>The ferry runs again from Monday.</p>"


# JSON, plain text, feeds -----------------------------------------------------------------


def test_json_html_field_is_sanitised_html_and_body_stays_text(daily: str, tmp_path: Path) -> None:
    stories = [
        {
            "title": "Night buses stay",
            "lede": "The council voted to keep them.",
            "html": "<h2>Why</h2><p>Riders <b>asked</b>, see "
            '<a href="/petition">the petition</a>.</p><ul><li>14,000 names</li></ul>',
            "url": "https://news.example.com/2026/11/buses",
            "image": "https://news.example.com/img/bus.jpg",
            "image_alt": "A night bus at the depot",
            "image_credit": "Example News",
            "section": "Transport",
        },
        {"title": "Typed tags", "body": "A <b>tag</b> typed\n\n- one\n- two"},
    ]
    add_file(tmp_path, "two.json", json.dumps(stories))
    buses = story("night-buses-stay")
    assert buses.body_html == (
        "<p>The council voted to keep them.</p>\n<h3>Why</h3>\n"
        '<p>Riders <b>asked</b>, see <a href="https://news.example.com/petition" '
        'rel="noopener noreferrer">the petition</a>.</p>\n<ul><li>14,000 names</li></ul>'
    )
    assert buses.lede == "The council voted to keep them."
    assert buses.body == (
        "Why\n\nRiders asked, see the petition [1].\n\n- 14,000 names\n\n"
        "[1] https://news.example.com/petition"
    )
    assert (buses.image_alt, buses.image_credit, buses.section) == (
        "A night bus at the depot",
        "Example News",
        "Transport",
    )
    typed = story("typed-tags")
    assert typed.body_html == (
        "<p>A &lt;b&gt;tag&lt;/b&gt; typed</p>\n<ul><li>one</li><li>two</li></ul>"
    )
    assert (typed.lede, typed.body) == ("A <b>tag</b> typed", "- one\n- two")


def test_plain_text_is_escaped_into_paragraphs_and_lists(daily: str, tmp_path: Path) -> None:
    add_file(
        tmp_path,
        "flood.txt",
        "Flood warning\n\nRivers rose <fast> & wide\novernight.\n\nBring:\n* water\n* a torch\n",
    )
    flood = story("flood-warning")
    assert flood.body_html == (
        "<p>Rivers rose &lt;fast&gt; &amp; wide overnight.</p>\n<p>Bring:</p>\n"
        "<ul><li>water</li><li>a torch</li></ul>"
    )
    assert flood.lede == "Rivers rose <fast> & wide overnight."
    assert flood.body == "Bring:\n\n- water\n- a torch"


FEED = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">
  <title>Example Science</title>
  <id>urn:uuid:feed</id>
  <updated>2026-11-24T12:00:00Z</updated>
  {entries}
</feed>
"""

ENTRY = """<entry>
    <title>{title}</title>
    <id>urn:uuid:{id}</id>
    <link href="https://science.example.org/{id}"/>
    <updated>2026-11-24T12:00:00Z</updated>{media}
    <content type="html">{content}</content>
  </entry>"""


def feed(
    tmp_path: Path, *entries: tuple[str, str, str], media: dict[str, str] | None = None
) -> Path:
    """An Atom feed of (title, id, content HTML) entries; `media` gives an entry (by id)
    a Media RSS image of its own."""
    path = tmp_path / "feed.atom"
    images = media or {}
    body = "\n".join(
        ENTRY.format(
            title=escape(title),
            id=ident,
            content=escape(html),
            media=f'\n    <media:content url="{images[ident]}" medium="image"/>'
            if ident in images
            else "",
        )
        for title, ident, html in entries
    )
    path.write_text(FEED.format(entries=body))
    return path


def test_feed_content_keeps_its_structure_and_links_resolve_to_the_entry(
    daily: str, tmp_path: Path
) -> None:
    content = (
        "<div><p>Look <strong>west</strong> after sunset.</p>"
        "<h2>What to bring</h2><ul><li>binoculars</li><li>a <a href='/map'>star map</a></li></ul>"
        "<p>Clear skies <em>expected</em>.<br><br>Cloud on Friday.</p></div>"
    )
    run("stories", "import-feed", str(feed(tmp_path, ("Comet tonight", "comet", content))))
    comet = story("comet-tonight")
    assert comet.body_html == (
        "<p>Look <strong>west</strong> after sunset.</p>\n<h3>What to bring</h3>\n"
        '<ul><li>binoculars</li><li>a <a href="https://science.example.org/map" '
        'rel="noopener noreferrer">star map</a></li></ul>\n'
        "<p>Clear skies <em>expected</em>.</p>\n<p>Cloud on Friday.</p>"
    )
    assert story_paragraphs(comet) == [
        "Look west after sunset.",
        "What to bring",
        "- binoculars\n- a star map [1]",
        "Clear skies expected.",
        "Cloud on Friday.",
        "[1] https://science.example.org/map",
    ]


def test_a_feed_image_repeated_at_the_top_of_the_content_is_shown_once(
    daily: str, tmp_path: Path
) -> None:
    comet, chart = "https://science.example.org/comet.jpg", "https://science.example.org/chart.png"
    path = feed(
        tmp_path,
        ("Comet tonight", "comet", f'<p><img src="{comet}" alt="The comet"></p><p>Look west.</p>'),
        ("Comet chart", "chart", f'<p><img src="{chart}" alt="Chart"></p><p>Look east.</p>'),
        ("Comet gone", "gone", f'<p><img src="{chart}" alt="Chart"></p><p>Too late.</p>'),
        media={"comet": comet, "chart": comet},
    )
    run("stories", "import-feed", str(path))
    same = story("comet-tonight")
    assert (same.image, same.body_html) == (comet, "<p>Look west.</p>")
    other = story("comet-chart")  # an image of its own: the one in the text stays
    assert other.image == comet
    assert other.body_html == f'<p><img src="{chart}" alt="Chart"></p>\n<p>Look east.</p>'
    gone = story("comet-gone")  # no image of its own: the one on top leads
    assert (gone.image, gone.image_alt, gone.body_html) == (chart, "Chart", "<p>Too late.</p>")


# Excerpts ------------------------------------------------------------------------------


def test_digest_excerpt_takes_the_list_after_a_colon_whole(daily: str, tmp_path: Path) -> None:
    add_file(tmp_path, "storm.md", STORM, "--list", "daily")
    shown = entry("storm-cuts-power-to-the-east-side")
    assert shown["html"] == (
        "<p>The storm left <strong>12,000 homes</strong> without power overnight, and the "
        'utility\'s <a href="https://power.example.com/outages" rel="noopener noreferrer">'
        "outage map</a> still shows most of the east side dark.</p>\n"
        "<p>Residents were asked to:</p>\n"
        "<ul><li>boil tap water before drinking it</li><li>keep off Mill Road, where "
        "<em>lines are down</em></li><li>report outages on the "
        '<a href="https://power.example.com/outages" rel="noopener noreferrer">outage map</a>'
        "</li></ul>"
    )
    assert shown["text"] == (
        "The storm left 12,000 homes without power overnight, and the utility's outage map [1] "
        "still shows most of the east side dark.\n\n"
        "Residents were asked to:\n\n"
        "- boil tap water before drinking it\n"
        "- keep off Mill Road, where lines are down\n"
        "- report outages on the outage map [1]\n\n"
        "[1] https://power.example.com/outages"
    )
    assert shown["paragraphs"][1:] == [
        "Residents were asked to:",
        "- boil tap water before drinking it\n- keep off Mill Road, where lines are down\n"
        "- report outages on the outage map",
    ]
    # The reader sees the same in the digest, both parts.
    html, text, _ = compose_parts()
    assert "report outages on the" in html and "- report outages on the outage map" in text
    assert "Repairs" not in text


def compose_parts(slug: str = "daily") -> tuple[str, str, int]:
    """The list's next digest as stored: its HTML, its text and how many stories it has."""
    with session_scope() as session:
        mlist = session.scalar(select(MailingList).where(MailingList.slug == slug))
        assert mlist is not None
        digest = compose_digest(session, get_settings(), mlist, now=NOW + timedelta(days=30))
        assert digest is not None
        return digest.html, digest.text, len(digest.story_ids)


def test_excerpt_never_ends_on_a_colon_or_a_heading(daily: str, tmp_path: Path) -> None:
    add_file(
        tmp_path,
        "colon.md",
        "# Colon story\n\nThe lede is here.\n\nTwo.\n\nThe mayor said:\n\n> We will rebuild.\n",
    )
    assert entry("colon-story")["text"] == "The lede is here.\n\nTwo."
    add_file(tmp_path, "heading.md", "# Heading story\n\nOne.\n\nTwo.\n\n## Next\n\nThree.\n")
    assert entry("heading-story")["paragraphs"] == ["One.", "Two."]
    add_file(tmp_path, "plain.md", "# Plain story\n\nOne.\n\nTwo.\n\nThree.\n\nFour.\n")
    assert MAIL_PARAGRAPHS == 3
    assert entry("plain-story")["paragraphs"] == ["One.", "Two.", "Three."]
    add_file(tmp_path, "only.md", "# Only a colon\n\nFirst things first. Residents must:\n")
    assert entry("only-a-colon")["text"] == "First things first."


def test_short_entry_cuts_the_lede_at_a_sentence_end(daily: str, tmp_path: Path) -> None:
    sentence = "The river rose two metres in a night, the highest in forty years. "
    lede = sentence * 12  # 792 characters, eleven sentence ends inside the limit
    add_file(tmp_path, "long.md", f"# Long lede\n\n{lede}\n\nSecond paragraph.\n")
    short = entry("long-lede", short=True)
    assert short["text"] == (sentence * (SHORT_LEDE // len(sentence))).strip()
    assert short["html"] == f"<p>{short['text']}</p>"
    add_file(
        tmp_path,
        "colon-lede.md",
        "# Colon lede\n\nResidents were asked to:\n\n- boil water\n- stay home\n\nLater.\n",
    )
    assert entry("colon-lede", short=True)["text"] == (
        "Residents were asked to:\n\n- boil water\n- stay home"
    )


def test_a_story_stored_before_rich_bodies_still_renders(daily: str, tmp_path: Path) -> None:
    add_file(tmp_path, "old.txt", "Old story\n\nThe lede <as typed>.\n\nSecond.\n\nThird.\n")
    with session_scope() as session:
        session.execute(update(Story).values(body_html=""))
    old = entry("old-story")
    assert old["html"] == "<p>The lede &lt;as typed&gt;.</p>\n<p>Second.</p>\n<p>Third.</p>"
    assert old["text"] == "The lede <as typed>.\n\nSecond.\n\nThird."
    html, text, _ = compose_parts()
    assert "The lede &lt;as typed&gt;." in html and "Third." in text


# The story page --------------------------------------------------------------------------


@pytest.fixture
def web(daily: str, tmp_path: Path) -> Iterator[str]:
    app = AppProcesses({}, tmp_path)
    try:
        yield app.start_web()
    finally:
        app.stop()


def test_story_page_shows_the_rich_body(web: str, tmp_path: Path) -> None:
    add_file(tmp_path, "storm.md", STORM)
    page = httpx.get(f"{web}/stories/storm-cuts-power-to-the-east-side", timeout=10)
    assert page.status_code == 200
    assert "<strong>12,000 homes</strong>" in page.text
    assert "<ul><li>boil tap water before drinking it</li>" in page.text
    assert "<h3>Repairs</h3>" in page.text
    assert 'alt="A fallen tree across Mill Road"' in page.text
    assert "Photo: Jonas Berg / Example News" in page.text
    # A story stored before bodies were rich is shown from its paragraphs, escaped.
    add_file(tmp_path, "old.txt", "Old story\n\nThe lede <b>as typed</b>.\n\nSecond.\n")
    with session_scope() as session:
        session.execute(update(Story).where(Story.slug == "old-story").values(body_html=""))
    old = httpx.get(f"{web}/stories/old-story", timeout=10).text
    assert '<p class="lede">The lede &lt;b&gt;as typed&lt;/b&gt;.</p>' in old
    assert "<p>Second.</p>" in old


# Hostile markup ----------------------------------------------------------------------------

HOSTILE_HTML = [
    "<script>alert('x1')</script>",
    '<img src="https://news.example.com/a.jpg" onerror="alert(\'x2\')" alt="kept image">',
    "<img src=x onerror=alert('x3')>",
    "<a href=\"javascript:alert('x4')\">js link</a>",
    "<a href=\" JaVaScRiPt:alert('x5')\">js link 2</a>",
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data link</a>',
    "<img src=\"data:image/svg+xml,&lt;svg onload=alert('x6')&gt;\">",
    "<p style=\"background:url(javascript:alert('x7'))\" onclick=\"alert('x8')\">styled</p>",
    "<div style=\"width: expression(alert('x9'))\">expression</div>",
    '<iframe src="https://evil.example/" onload="alert(\'x10\')">framed</iframe>',
    '<object data="https://evil.example/x.swf"><param name="a" value="b"></object>',
    '<embed src="https://evil.example/x.swf">',
    "<svg onload=\"alert('x11')\"><script>alert('x12')</script></svg>",
    "<math><a href=\"javascript:alert('x13')\">math</a></math>",
    '<form action="https://evil.example"><button formaction="javascript:alert(\'x14\')">b'
    "</button></form>",
    "<style>p { background: url(javascript:alert('x15')) }</style>",
    '<a href="https://news.example.com/safe" onmouseover="alert(\'x16\')">safe link</a>',
    '<base href="javascript:alert(\'x17\')//"><meta http-equiv="refresh" content="0">',
]

HOSTILE_MARKDOWN = [
    "[js](javascript:alert('m1'))",
    "[js2](<javascript:alert('m2')>)",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![img](javascript:alert('m3'))",
    "![svg](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "<javascript:alert('m4')>",
    "[ref][r]\n\n[r]: javascript:alert('m5')",
    "[safe](https://news.example.com/safe)",
    *HOSTILE_HTML,  # raw HTML in Markdown: shown as written
]

FORBIDDEN_TAGS = {
    "script", "iframe", "object", "embed", "svg", "math", "form", "button", "base", "frame",
    "param", "applet",
}  # fmt: skip


class _Check(HTMLParser):
    """Every tag and attribute of a page, for what may never be in one."""

    def __init__(self, style_attributes: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.style = False
        self.style_attributes = style_attributes

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        if tag == "meta" and ("http-equiv", "refresh") in attrs:
            self.problems.append("<meta http-equiv=refresh>")
        self.style = tag == "style"
        for name, value in attrs:
            value = (value or "").lower().replace(" ", "")
            if name.startswith("on") or (name == "style" and not self.style_attributes):
                self.problems.append(f"<{tag} {name}>")
            if any(bad in value for bad in ("javascript:", "data:", "expression(", "alert(")):
                self.problems.append(f"<{tag} {name}={value}>")

    def handle_endtag(self, tag: str) -> None:
        self.style = False

    def handle_data(self, data: str) -> None:
        if self.style and ("alert" in data or "javascript" in data):
            self.problems.append(f"<style>{data}")


def problems(html: str, *, style_attributes: bool = False) -> list[str]:
    """What may never be in a page: hostile tags, event handlers, script or data URLs, CSS
    expressions, style attributes (only premailer's, checked for the above, in a mail)."""
    check = _Check(style_attributes)
    check.feed(html)
    check.close()
    return check.problems


def test_body_html_from_any_way_in_is_sanitised_before_it_is_stored() -> None:
    """Other ways in (a web page's article, a feed poller) hand make_draft their HTML."""
    draft = make_draft(
        "https://news.example.com/page",
        title="Direct",
        paragraphs=["Words."],
        body_html='<p onclick="alert(1)" style="color:red">Words <a href="javascript:alert(2)">'
        "here</a>.</p><script>alert(3)</script><iframe src='https://evil.example'></iframe>",
    )
    assert draft.body_html == '<p>Words <a rel="noopener noreferrer">here</a>.</p>'


def test_hostile_markup_never_survives(web: str, tmp_path: Path) -> None:
    """Each hostile piece is a story of its own (so each is in the digest's excerpt), in
    Markdown, in a feed and as a JSON "html" field."""
    files = []
    for n, piece in enumerate(HOSTILE_MARKDOWN):
        path = tmp_path / f"md{n}.md"
        path.write_text(f"# Markdown {n}\n\nLede md{n}.\n\n{piece}\n")
        files.append(str(path))
    with session_scope() as session:
        create_list(session, "md", "Markdown Brief")
    run("stories", "add", *files, "--list", "md")
    entries = [(f"Feed {n}", f"f{n}", f"<p>Lede f{n}.</p>{p}") for n, p in enumerate(HOSTILE_HTML)]
    run("stories", "import-feed", str(feed(tmp_path, *entries)), "--list", "daily")
    add_file(
        tmp_path,
        "hostile.json",
        json.dumps(
            [
                {"title": f"Json {n}", "html": f"<p>Lede j{n}.</p>{p}"}
                for n, p in enumerate(HOSTILE_HTML)
            ]
        ),
        "--list",
        "daily",
    )
    with session_scope() as session:
        stored = [(s.slug, s.body_html) for s in session.scalars(select(Story).order_by(Story.id))]
    assert len(stored) == len(HOSTILE_MARKDOWN) + 2 * len(HOSTILE_HTML)
    for slug, body_html in stored:
        assert problems(body_html) == [], slug
        page = httpx.get(f"{web}/stories/{slug}", timeout=10)
        assert page.status_code == 200
        assert problems(page.text) == [], slug
    bodies = dict(stored)
    # What is not hostile is kept: the words, the safe link and the image.
    for prefix in ("feed", "json"):
        safe = bodies[f"{prefix}-16"]
        assert '<a href="https://news.example.com/safe" rel="noopener noreferrer">' in safe
        kept = bodies[f"{prefix}-1"]
        assert '<img src="https://news.example.com/a.jpg" alt="kept image">' in kept
        assert "styled" in bodies[f"{prefix}-7"] and "expression" in bodies[f"{prefix}-8"]
        assert "js link" in bodies[f"{prefix}-3"] and "href" not in bodies[f"{prefix}-3"]
    assert '<a href="https://news.example.com/safe"' in bodies["markdown-7"]
    # Raw HTML in Markdown is shown as the characters written.
    shown = httpx.get(f"{web}/stories/markdown-8", timeout=10).text
    assert "&lt;script&gt;alert('x1')&lt;/script&gt;" in shown
    # The digests: every story in one, nothing hostile in the HTML.
    html, _, count = compose_parts("daily")
    assert count == 2 * len(HOSTILE_HTML)
    for n in range(len(HOSTILE_HTML)):
        assert f"Lede f{n}." in html and f"Lede j{n}." in html
    assert problems(html, style_attributes=True) == []
    assert '<a href="https://news.example.com/safe"' in html
    html, _, count = compose_parts("md")
    assert count == len(HOSTILE_MARKDOWN)
    for n in range(len(HOSTILE_MARKDOWN)):
        assert f"Lede md{n}." in html
    assert problems(html, style_attributes=True) == []
    assert "&lt;script&gt;alert(" in html
