"""Click tracking at compose time (newsletter/engagement/links.py): which links become
signed redirects, one number per URL, and the open pixel."""

from __future__ import annotations

import re

import lxml.html

from newsletter.engagement.codes import read_link_code
from newsletter.engagement.links import pixel, track

BASE = "https://news.example.org"
SECRET = "s3cret-for-tests"

DIGEST = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Digest</title></head><body>
<h2><a href="https://paper.example/story-1">Story one</a></h2>
<p>Read <a href="https://paper.example/story-1">it again</a> or
<a href="http://other.example/x?a=1&amp;b=%C3%A9">another</a>.</p>
<p><a href="mailto:editor@paper.example">Write to us</a>
<a href="#top">Top</a> <a href="/relative">rel</a></p>
<p><a href="%%NL_UNSUBSCRIBE_URL%%">Unsubscribe</a>
<a href="%%NL_PREFERENCES_URL%%">Preferences</a>
<a href="https://news.example.org/unsubscribe/abc">Unsubscribe (plain)</a>
<a href="https://news.example.org/preferences/p2.1.x">Preferences (plain)</a></p>
</body></html>"""


def _hrefs(html: str) -> list[str]:
    return [a.get("href") for a in lxml.html.document_fromstring(html).iter("a")]


def test_links_become_signed_redirects_one_number_per_url() -> None:
    stories = {"https://paper.example/story-1": 41}
    html, rows = track(DIGEST, 7, BASE, SECRET, stories.get)
    hrefs = _hrefs(html)
    tracked = [h for h in hrefs if h.startswith(f"{BASE}/c/%%NL_READER%%/")]
    assert len(tracked) == 3
    # the same URL twice: one number; the other URL: another
    assert tracked[0] == tracked[1] != tracked[2]
    assert [(r.digest_id, r.number, r.url, r.story_id) for r in rows] == [
        (7, 1, "https://paper.example/story-1", 41),
        (7, 2, "http://other.example/x?a=1&b=%C3%A9", None),
    ]
    for href, number in ((tracked[0], 1), (tracked[2], 2)):
        assert read_link_code(SECRET, href.rsplit("/", 1)[1]) == (7, number)
    # left alone, in order
    assert hrefs[3:] == [
        "mailto:editor@paper.example",
        "#top",
        "/relative",
        "%%NL_UNSUBSCRIBE_URL%%",
        "%%NL_PREFERENCES_URL%%",
        "https://news.example.org/unsubscribe/abc",
        "https://news.example.org/preferences/p2.1.x",
    ]
    assert html.startswith("<!DOCTYPE html>")
    assert "paper.example/story-1" not in html
    assert "Story one" in html


def test_variants_share_numbers() -> None:
    numbering: dict[str, int] = {}
    _, first = track(DIGEST, 7, BASE, SECRET, lambda url: None, numbering=numbering)
    other = '<html><body><a href="http://other.example/x?a=1&amp;b=%C3%A9">o</a>'
    other += '<a href="https://third.example/">t</a></body></html>'
    html, second = track(other, 7, BASE, SECRET, lambda url: None, numbering=numbering)
    assert [r.number for r in first] == [1, 2]
    assert [(r.number, r.url) for r in second] == [(3, "https://third.example/")]
    codes = [h.rsplit("/", 1)[1] for h in _hrefs(html)]
    assert [read_link_code(SECRET, c) for c in codes] == [(7, 2), (7, 3)]


def test_a_digest_without_links_is_untouched() -> None:
    plain = "<html><body><p>No links</p></body></html>"
    assert track(plain, 1, BASE, SECRET, lambda url: None) == (plain, [])
    only_mail = '<html><body><a href="mailto:a@b.c">m</a></body></html>'
    assert track(only_mail, 1, BASE, SECRET, lambda url: None) == (only_mail, [])


def test_another_secret_or_digest_does_not_verify() -> None:
    html, _ = track(DIGEST, 7, BASE, SECRET, lambda url: None)
    code = _hrefs(html)[0].rsplit("/", 1)[1]
    assert read_link_code("another secret", code) is None
    altered = re.sub(r"^7\.", "8.", code)
    assert read_link_code(SECRET, altered) is None


def test_pixel() -> None:
    img = lxml.html.fragment_fromstring(pixel(BASE + "/"))
    assert img.tag == "img"
    assert img.get("src") == f"{BASE}/o/%%NL_READER%%.gif"
    assert img.get("alt") == ""
    assert (img.get("width"), img.get("height")) == ("1", "1")
