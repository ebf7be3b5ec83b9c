"""Digest out: the right stories, rendered once, inlined, under the clip limit, escaped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.digests import fields as placeholders
from newsletter.digests.compose import compose_digest, preview_digest
from newsletter.digests.preview import digest_template, preview_message
from newsletter.digests.render import GMAIL_CLIP, HTML_BUDGET
from newsletter.mail.fastpath import Recipient
from newsletter.models import Digest, DigestStatus, MailingList
from newsletter.stories.drafts import StoryDraft
from newsletter.stories.parse import parse_story_file
from newsletter.stories.store import store_stories
from newsletter.subscriptions.lists import create_list
from newsletter.subscriptions.tokens import make_preferences_token, make_unsubscribe_token
from tests.reference import fill

FIXTURES = Path(__file__).parent / "fixtures" / "stories"
SAMPLE = FIXTURES / "bakhmut.txt"
NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
HEADLINE = "Ukraine vows to defend Bakhmut as Russian grip tightens"
APOSTROPHES = "apparently prolonging the war's bloodiest battle in a bid to break Moscow's assault"
QUOTE = '"We lost three days, not the season," said the harbour master'
CURLY = "Harbour “reopens” after storm — fishermen cheer 🎣"


@pytest.fixture
def daily(database: str) -> str:
    with session_scope() as session:
        create_list(session, "daily", "The Daily Brief")
    return "daily"


def add(*drafts: StoryDraft, published: datetime | None = None) -> None:
    for d in drafts:
        d.published_at = d.published_at or published or NOW - timedelta(hours=1)
    with session_scope() as session:
        store_stories(session, list(drafts), now=NOW - timedelta(hours=1))


def draft(title: str, *paragraphs: str, published: datetime | None = None) -> StoryDraft:
    lede, *rest = paragraphs or ("A lede.",)
    return StoryDraft(title, lede, list(rest), source=title, published_at=published)


def compose(slug: str = "daily", now: datetime = NOW, **kw: str) -> Digest | None:
    with session_scope() as session:
        mlist = session.scalar(select(MailingList).where(MailingList.slug == slug))
        assert mlist is not None
        return compose_digest(session, get_settings(), mlist, now=now, **kw)


def mark(digest_id: int, status: DigestStatus) -> None:
    with session_scope() as session:
        digest = session.get(Digest, digest_id)
        assert digest is not None
        digest.status = status


def list_of(digest: Digest) -> MailingList:
    with session_scope() as session:
        mlist = session.get(MailingList, digest.list_id)
        assert mlist is not None
        return mlist


def unsubscribe_url(subscription_id: int = 0) -> str:
    s = get_settings()
    return f"{s.base_url}/unsubscribe/{make_unsubscribe_token(s.secret, subscription_id)}"


def read(digest: Digest, email: str = "ana@example.com", name: str = "Ana") -> tuple[str, str]:
    """Both parts as the reader gets them: rendered by the sending path, then decoded."""
    reader = Recipient(delivery_id=0, email=email, name=name, subscription_id=0)
    preview = preview_message(get_settings(), list_of(digest), digest, reader=reader)
    return preview.html, preview.text


def test_sample_story_makes_a_digest_with_inline_styles_and_both_parts(daily: str) -> None:
    add(*parse_story_file(SAMPLE))
    add(*parse_story_file(FIXTURES / "harbour.md"))  # published 2026-11-24: second
    digest = compose()
    assert digest is not None and digest.status == DigestStatus.draft
    assert digest.subject == f"The Daily Brief: {HEADLINE} and 1 more"
    html, text = read(digest)
    # Inlined: the elements themselves carry the styles.
    assert re.search(r"<h2 style=[\"'][^>]*font:bold 30px", html)  # the lead, larger
    assert re.search(r"<h3 style=[\"'][^>]*font:bold 21px", html)  # the others
    assert re.search(r"<p style=[\"'][^\"']*margin:0 0 12px", html)
    assert re.search(r'<body style="[^"]*background:#f4f4f1', html)
    assert "@media (prefers-color-scheme: dark)" in html  # only the query stays in <style>
    assert html.startswith("<!DOCTYPE html>")
    # The reader's words, quotes intact, in both parts.
    assert HEADLINE in html and HEADLINE in text
    for words in (APOSTROPHES, QUOTE, CURLY):
        assert words in unescape(html) and words in text
    assert "Moscow has sent thousands of troops" in text  # a few paragraphs, not only the lede
    assert "preparing to withdraw" in text and "Russia, which launched" not in text
    # Links and footer.
    base = get_settings().base_url
    story_url = f"{base}/stories/ukraine-vows-to-defend-bakhmut-as-russian-grip-tightens"
    assert f'href="{story_url}"' in html and f"Read more: {story_url}" in text
    assert f'href="{base}/archive/{digest.id}"' in html
    assert f"View in your browser: {base}/archive/{digest.id}" in text
    assert f'href="{unsubscribe_url()}"' in html
    assert f"Unsubscribe: {unsubscribe_url()}" in text
    assert "You receive The Daily Brief at ana@example.com." in text
    postal = get_settings().postal_address
    assert postal in html and postal in text
    assert "<" not in text and "style=" not in text  # for reading, not a tag dump


def test_stored_digest_keeps_placeholders_and_a_reader_gets_them_filled(daily: str) -> None:
    add(*parse_story_file(SAMPLE))
    digest = compose()
    assert digest is not None
    for part in (digest.html, digest.text):
        assert placeholders.EMAIL in part and placeholders.UNSUBSCRIBE_URL in part
        assert placeholders.PREFERENCES_URL in part  # the built-in footer's own link
    s = get_settings()
    values = {
        placeholders.NAME: "Ana",
        placeholders.EMAIL: "o'brien&co@example.com",
        placeholders.UNSUBSCRIBE_URL: unsubscribe_url(),
        placeholders.PREFERENCES_URL: f"{s.base_url}/preferences/"
        + make_preferences_token(s.secret, 0),
    }
    html, text = read(digest, email="o'brien&co@example.com")
    assert (html, text) == (
        fill(digest.html, values, html=True),
        fill(digest.text, values, html=False),
    )
    assert "o&#x27;brien&amp;co@example.com" in html and "o'brien&co@example.com" in text
    assert not any(m in html + text for m in placeholders.ALL)


def test_no_new_stories_means_no_digest(daily: str) -> None:
    assert compose() is None


def test_drafts_do_not_use_stories_up_but_a_sent_digest_does(daily: str) -> None:
    add(draft("First story"))
    first = compose()
    assert first is not None
    assert compose() is not None  # a second draft: the first one consumed nothing
    mark(first.id, DigestStatus.sent)
    assert compose(now=NOW + timedelta(minutes=5)) is None
    add(draft("Second story", published=NOW + timedelta(minutes=10)))
    later = compose(now=NOW + timedelta(hours=1))
    assert later is not None
    assert later.subject == "The Daily Brief: Second story"
    assert len(later.story_ids) == 1


def test_cancelled_digest_gives_its_stories_back(daily: str) -> None:
    add(draft("Only story"))
    first = compose()
    assert first is not None
    mark(first.id, DigestStatus.cancelled)
    again = compose(now=NOW + timedelta(minutes=1))
    assert again is not None and again.story_ids == first.story_ids


def test_stories_keep_the_editors_order_and_future_ones_wait(daily: str) -> None:
    """The order given is the digest's order (the first leads), whatever the dates."""
    add(draft("Lead, written first", published=NOW - timedelta(hours=5)))
    add(draft("Second, newer", published=NOW - timedelta(hours=1)))
    add(draft("Embargoed", published=NOW + timedelta(hours=3)))
    digest = compose()
    assert digest is not None
    assert digest.subject == "The Daily Brief: Lead, written first and 1 more"
    text = digest.text
    assert text.index("1. Lead, written first") < text.index("2. Second, newer")
    assert "Embargoed" not in text


def test_stories_of_another_list_stay_out(daily: str) -> None:
    with session_scope() as session:
        weekly = create_list(session, "weekly", "Weekly")
        store_stories(session, [draft("Weekly only", published=NOW - timedelta(hours=1))], weekly)
    assert compose("daily") is None
    digest = compose("weekly")
    assert digest is not None and "Weekly only" in digest.text


def test_same_period_key_composes_once(daily: str) -> None:
    add(draft("A story"))
    first = compose(period_key="2026-11-25")
    second = compose(period_key="2026-11-25")
    assert first is not None and second is not None and first.id == second.id


def test_twenty_stories_stay_well_under_the_clip_limit(daily: str) -> None:
    sample = parse_story_file(SAMPLE)[0]
    for n in range(20):
        add(draft(f"{sample.title} ({n})", sample.lede, *sample.paragraphs))
    digest = compose()
    assert digest is not None
    size = len(digest.html.encode())
    assert size < 60 * 1024, size
    assert "Moscow has sent thousands" in digest.text  # nothing needed shortening


def test_stories_too_big_for_gmail_are_cut_to_lede_and_link(daily: str) -> None:
    long = " ".join(["The council debated the budget line by line late into the night."] * 60)
    for n in range(20):
        add(draft(f"Budget night {n:02d}", f"Lede {n:02d}: the vote is close.", long, long))
    digest = compose()
    assert digest is not None
    html, text = read(digest)
    assert len(digest.html.encode()) <= HTML_BUDGET
    assert len(html.encode()) < GMAIL_CLIP
    for n in range(20):  # every story still there, with its headline, lede and link
        assert f"Budget night {n:02d}" in html and f"Lede {n:02d}: the vote is close." in html
    assert html.count("Read more") == 20
    assert text.count("late into the night") < 40 * 60  # cut, not complete


def test_even_ledes_too_big_leave_stories_for_the_archive(daily: str) -> None:
    huge = " ".join(["word"] * 30000)
    for n in range(60):
        add(draft(f"Story {n:02d} " + "x" * 400, huge))
    digest = compose()
    assert digest is not None
    assert len(digest.html.encode()) <= HTML_BUDGET
    shown = digest.text.count("Read more: ")
    assert 0 < shown < 60
    assert f"{60 - shown} more stories in the archive: " in digest.text
    assert f'<a href="{get_settings().base_url}/archive/{digest.id}"' in digest.html
    assert len(digest.story_ids) == 60  # the archive page lists them all


def test_story_html_and_scripts_show_as_text(daily: str) -> None:
    add(
        draft(
            '<script>alert("x")</script> Mayor <b>resigns</b>',
            "She wrote <img src=x onerror=alert(1)> & left.",
        )
    )
    digest = compose()
    assert digest is not None
    html, text = read(digest)
    assert "<script>" not in html and "<b>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;resigns&lt;/b&gt;" in html
    assert '<script>alert("x")</script> Mayor <b>resigns</b>' in text  # as written
    assert "She wrote <img src=x onerror=alert(1)> & left." in text


def test_preview_uses_nothing_up_and_stores_nothing(daily: str) -> None:
    add(*parse_story_file(SAMPLE))
    with session_scope() as session:
        mlist = session.scalar(select(MailingList))
        assert mlist is not None
        preview = preview_digest(session, get_settings(), mlist, now=NOW)
        assert preview is not None and preview.subject.endswith(HEADLINE)
        assert session.scalar(select(func.count(Digest.id))) == 0


def test_operator_previews_a_digest_from_the_shell(daily: str, tmp_path: Path) -> None:
    def newsletter(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            env=dict(os.environ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    nothing = newsletter("digest", "preview", "--list", "daily")
    assert nothing.returncode == 0
    assert "no new stories" in nothing.stdout
    assert newsletter("stories", "add", str(SAMPLE)).returncode == 0
    out = tmp_path / "issue.html"
    shown = newsletter("digest", "preview", "--list", "daily", "--out", str(out))
    assert shown.returncode == 0, shown.stderr
    assert f"subject: The Daily Brief: {HEADLINE}" in shown.stdout
    assert re.search(r"html: [\d,]+ bytes", shown.stdout)
    html = out.read_text()
    assert HEADLINE in html and 'style="' in html
    assert APOSTROPHES in (tmp_path / "issue.txt").read_text()
    unknown = newsletter("digest", "preview", "--list", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_a_20_story_digest_renders_a_wire_message_for_each_reader(daily: str) -> None:
    """How fast is bench/compose.py's to say (DigestTemplate.render_wire readers/s)."""
    sample = parse_story_file(SAMPLE)[0]
    for n in range(20):
        add(draft(f"{sample.title} ({n})", sample.lede, *sample.paragraphs))
    digest = compose()
    assert digest is not None
    template = digest_template(get_settings(), list_of(digest), digest)
    readers = [Recipient(i + 1, f"r{i}@example.com", f"Reader {i}", i + 1) for i in range(200)]
    wires = [template.render_wire(r) for r in readers]
    assert len(set(wires)) == len(readers)
    for r, wire in zip(readers, wires, strict=True):
        assert r.email.encode() in wire and wire.endswith(b"\r\n.\r\n"), wire[-200:]
