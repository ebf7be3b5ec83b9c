"""The digest's layout as readers see it, in a real browser (Chromium): desktop and
phone widths, images loaded and blocked, light and dark. The lead is larger with its
image, sections follow in the editor's order, nothing scrolls sideways on a phone,
alt text shows when images are off, and the markup carries what mail clients need
(lang, role="presentation" on layout tables, Outlook's MSO ghost table).

Screenshots go to the test's tmp dir and a copy to /tmp/layout-shots/ for people to look at.
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from PIL import Image, ImageDraw, ImageStat
from playwright.sync_api import sync_playwright

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.digests.compose import compose_digest
from newsletter.digests.preview import Preview, preview_message
from newsletter.media.entry import file_names
from newsletter.models import Media
from newsletter.stories.drafts import StoryDraft
from newsletter.stories.parse import parse_story_file
from newsletter.stories.store import store_stories
from newsletter.subscriptions.lists import create_list
from tests.conftest import reset_caches
from tests.services import unavailable

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path("/tmp/layout-shots")
FIXTURES = Path(__file__).parent / "fixtures" / "stories"
NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
LEAD = "Ukraine vows to defend Bakhmut as Russian grip tightens"
WIDTHS = {"desktop": 1280, "phone": 390}
# (title, section, image colour or None, image alt)
OTHERS = [
    ("Harbour reopens after three days of storms", None, None, None),
    ("Grain corridor: ships wait off Odesa as talks stall", "World", (40, 90, 140),
     "Cargo ships at anchor off the coast"),
    ("Kyiv restores power to 200,000 homes overnight", "Ukraine", None, None),
    ("Central banks hold rates; markets shrug", "Business", (150, 110, 40),
     "Traders at their desks"),
    ("Antarctic sea ice hits a record low for the season", "World", None, None),
    ("A Supercalifragilisticexpialidociouslylongunbrokenheadlinewordthatmustwrap", "Business",
     None, None),
]  # fmt: skip
RICH_BODY = (
    "<p>The harbour master reopened the port at dawn. What changes:</p>"
    "<ul><li>Ferries run to the usual timetable</li>"
    '<li>Fishing boats may leave from 6 am (<a href="https://harbour.example.org/notice">'
    "the notice</a>)</li></ul>"
)
SECTIONS = ["Ukraine", "World", "Business"]  # first appearance, the lead's section counts


def _picture(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> int:
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    w, h = size
    for i in range(6):
        shade = tuple(min(255, c + 25 * i) for c in colour)
        draw.ellipse((w * i // 7, h // 4, w * i // 7 + w // 3, h // 4 + h // 2), fill=shade)
    draw.rectangle((0, h * 3 // 4, w, h), fill=tuple(c // 2 for c in colour))
    image.save(path, "JPEG", quality=80)
    return path.stat().st_size


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def media_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A media folder served over HTTP on 127.0.0.1, as MEDIA_URL points readers to it."""
    folder = tmp_path / "media"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NEWSLETTER_MEDIA_DIR", str(folder))
    monkeypatch.setenv("NEWSLETTER_MEDIA_URL", f"http://127.0.0.1:{server.server_port}/")
    reset_caches()
    yield folder
    server.shutdown()
    server.server_close()


def _media(session: Any, folder: Path, key: str, colour: tuple[int, int, int]) -> Media:
    media = Media(
        source_hash=key.ljust(64, "0"),
        source_url=f"https://photos.example.org/{key}.jpg",
        key=key,
        content_type="image/jpeg",
        width=600,
        height=338,
        bytes=0,
    )
    one, two = file_names(media)
    media.bytes = _picture(folder / one, (600, 338), colour)
    _picture(folder / two, (1200, 676), colour)
    session.add(media)
    session.flush()
    return media


@pytest.fixture
def digest(sqlite_db: str, media_server: Path) -> tuple[Preview, str]:
    """A digest of a lead with an image and six more stories in three sections (two
    with images), as a reader gets it: the HTML and the text part."""
    lead = parse_story_file(FIXTURES / "bakhmut.txt")[0]
    lead.section = "Ukraine"
    lead.image_alt = "Ukrainian servicemen on a road outside Bakhmut"
    lead.image_credit = "Example Photo Agency"
    drafts = [lead]
    for title, section, _, alt in OTHERS:
        drafts.append(
            StoryDraft(
                title,
                f"{title.split(':')[0]}: what happened and why it matters to readers today.",
                ["A second paragraph with the detail. " * 4],
                source=title,
                author="Desk Reporter" if section else None,
                section=section,
                image_alt=alt,
                image_credit="Wire Service" if alt else None,
                published_at=NOW - timedelta(hours=2),
            )
        )
    drafts[1].body_html = RICH_BODY  # the unfiled story: a list and a link
    lead.published_at = NOW - timedelta(hours=2)
    with session_scope() as session:
        mlist = create_list(session, "daily", "The Daily Brief")
        stories = store_stories(session, drafts, now=NOW - timedelta(hours=1)).added
        colours: list[Any] = [(120, 60, 50), *(o[2] for o in OTHERS)]
        for story, colour in zip(stories, colours, strict=True):
            if colour is not None:
                story.image_media_id = _media(session, media_server, story.slug, colour).id
        composed = compose_digest(session, get_settings(), mlist, now=NOW)
        assert composed is not None
        preview = preview_message(get_settings(), mlist, composed, dkim_keys=())
    return preview, get_settings().media_base_url


def _browser(playwright: Any) -> Any:
    if not CHROMIUM.exists():
        unavailable("Debian's Chromium", f"no {CHROMIUM}", "apt-get install chromium")
    return playwright.chromium.launch(executable_path=str(CHROMIUM))


def _alt_is_drawn(shot: Path) -> bool:
    """Text drawn in the image's box: a fair share of pixels far from the box's colour."""
    image = Image.open(shot).convert("L")
    background = ImageStat.Stat(image).median[0]
    far = sum(1 for p in image.tobytes() if abs(p - background) > 60)
    return far > 30


def _facts(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
        const size = (el) => parseFloat(getComputedStyle(el).fontSize);
        const box = (el) => { const r = el.getBoundingClientRect();
                              return {x: r.x, y: r.y, w: r.width, h: r.height}; };
        return {
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
          lang: document.documentElement.getAttribute('lang'),
          tables: [...document.querySelectorAll('table')].map(t => t.getAttribute('role')),
          lead: size(document.querySelector('h2 a')),
          leadTitle: document.querySelector('h2 a').textContent,
          others: [...document.querySelectorAll('h3 a')].map(size),
          titles: [...document.querySelectorAll('h2 a, h3 a')].map(a => a.textContent),
          headings: [...document.querySelectorAll('h2.sec-title')].map(h => h.textContent),
          order: [...document.querySelectorAll('h2.sec-title, h3 a')].map(e => e.textContent),
          images: [...document.querySelectorAll('img')].map(i => ({
              alt: i.getAttribute('alt'), loaded: i.complete && i.naturalWidth > 0,
              srcset: i.getAttribute('srcset'),
              cls: i.className || (i.closest('table.thumb') ? 'thumb' : ''),
              widthAttr: i.getAttribute('width'), heightAttr: i.getAttribute('height'),
              box: box(i)})),
          items: [...document.querySelectorAll('li')].map(li => li.textContent),
          colBackground: getComputedStyle(document.querySelector('.col')).backgroundColor,
          leadColour: getComputedStyle(document.querySelector('h2 a')).color,
        };
    }"""
    )


def test_the_layout_holds_at_desktop_and_phone_widths_with_and_without_images(
    digest: tuple[Preview, str], tmp_path: Path
) -> None:
    preview, _ = digest
    html = preview.html
    # What Outlook and the markup checks need, in the message itself.
    assert "<!--[if mso]>" in html and '<table role="presentation" width="600"' in html
    assert html.count("<!--[if mso]>") >= 3 and "<![endif]-->" in html
    assert "@media (prefers-color-scheme: dark)" in html and "[data-ogsc]" in html
    page_file = tmp_path / "digest.html"
    page_file.write_text(html, encoding="utf-8")
    shots = tmp_path / "shots"
    shots.mkdir()
    SHOTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            for label, width in WIDTHS.items():
                for images in ("images", "blocked"):
                    for scheme in ("light", "dark"):
                        name = f"{label}-{width}-{images}-{scheme}"
                        context = browser.new_context(
                            viewport={"width": width, "height": 900},
                            color_scheme=scheme,
                            device_scale_factor=2 if label == "phone" else 1,
                        )
                        if images == "blocked":
                            context.route("http://127.0.0.1*/**", lambda route: route.abort())
                        page = context.new_page()
                        page.goto(page_file.as_uri(), wait_until="load")
                        facts = _facts(page)
                        shot = shots / f"{name}.png"
                        page.screenshot(path=str(shot), full_page=True)
                        shutil.copy(shot, SHOTS / shot.name)
                        _check(facts, label, width, images, scheme)
                        if images == "blocked":
                            lead_img = page.locator("img.lead-img")
                            alt_shot = shots / f"{name}-lead-alt.png"
                            lead_img.screenshot(path=str(alt_shot))
                            assert _alt_is_drawn(alt_shot), f"{name}: no alt text in the box"
                        context.close()
        finally:
            browser.close()


def _check(facts: dict[str, Any], label: str, width: int, images: str, scheme: str) -> None:
    where = f"{label} {width}px, {images}, {scheme}"
    assert facts["scrollWidth"] <= facts["innerWidth"], f"{where}: scrolls sideways"
    assert facts["lang"] == "en"
    assert facts["tables"] and all(r == "presentation" for r in facts["tables"]), facts["tables"]
    # The lead first and larger than every other headline.
    assert facts["leadTitle"] == LEAD
    assert facts["others"] and all(facts["lead"] > size for size in facts["others"]), where
    # Sections in order of first appearance; the unfiled story right after the lead.
    assert facts["headings"] == SECTIONS, where
    assert facts["order"] == [
        OTHERS[0][0],
        "Ukraine", OTHERS[2][0],
        "World", OTHERS[1][0], OTHERS[4][0],
        "Business", OTHERS[3][0], OTHERS[5][0],
    ], where  # fmt: skip
    # The rich body's list, as a list.
    assert facts["items"] == [
        "Ferries run to the usual timetable",
        "Fishing boats may leave from 6 am (the notice)",
    ], where
    # Images: the lead full width of the column, two thumbnails, each with alt and 2x.
    shown = facts["images"]
    assert [i["cls"] for i in shown] == ["lead-img", "thumb", "thumb"], shown
    assert all(i["alt"] and i["srcset"] and i["srcset"].endswith(" 2x") for i in shown)
    assert all(i["widthAttr"] and i["heightAttr"] for i in shown)
    assert shown[0]["alt"] == "Ukrainian servicemen on a road outside Bakhmut"
    assert shown[0]["widthAttr"] == "600" and shown[1]["widthAttr"] == "120"
    lead_box = shown[0]["box"]
    if images == "images":
        assert all(i["loaded"] for i in shown), where
        assert lead_box["w"] == min(600, width), (where, lead_box)
        assert abs(lead_box["h"] - lead_box["w"] * 338 / 600) < 2, (where, lead_box)
        assert all(0 < i["box"]["w"] <= 120 for i in shown[1:]), where
    else:
        assert not any(i["loaded"] for i in shown), where
        assert lead_box["w"] > 0 and lead_box["h"] > 0, (where, lead_box)  # alt shows here
    if scheme == "dark":
        assert facts["colBackground"] == "rgb(35, 35, 35)", where
        assert facts["leadColour"] == "rgb(236, 236, 236)", where
    else:
        assert facts["colBackground"] == "rgb(255, 255, 255)", where
        assert facts["leadColour"] == "rgb(28, 28, 28)", where


def test_the_text_part_has_the_lead_then_the_sections_in_order(
    digest: tuple[Preview, str],
) -> None:
    preview, media_url = digest
    text = preview.text
    lead_at = text.index(f"1. {LEAD}")
    unfiled_at = text.index(f"2. {OTHERS[0][0]}")
    headings = [text.index(f"\n{name.upper()}\n{'=' * len(name)}\n") for name in SECTIONS]
    assert lead_at < unfiled_at < headings[0] < headings[1] < headings[2]
    assert text.index(f"3. {OTHERS[2][0]}") > headings[0]  # Ukraine's other story
    assert headings[1] < text.index(f"4. {OTHERS[1][0]}") < text.index(f"5. {OTHERS[4][0]}")
    assert headings[2] < text.index(f"6. {OTHERS[3][0]}") < text.index(f"7. {OTHERS[5][0]}")
    assert "<" not in text and media_url not in text  # no markup, no image URLs
    # The rich body keeps its list as lines and its link as a reference.
    assert "Ferries run to the usual timetable" in text
    assert "https://harbour.example.org/notice" in text


def test_the_digest_has_no_serious_accessibility_violations(
    digest: tuple[Preview, str], tmp_path: Path
) -> None:
    preview, _ = digest
    page_file = tmp_path / "digest.html"
    page_file.write_text(preview.html, encoding="utf-8")
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            for width, scheme in ((1280, "light"), (390, "dark")):
                context = browser.new_context(
                    viewport={"width": width, "height": 900}, color_scheme=scheme
                )
                page = context.new_page()
                page.goto(page_file.as_uri(), wait_until="load")
                results = Axe().run(page)
                bad = [
                    (v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
                    for v in results.response["violations"]
                    if v["impact"] in ("serious", "critical")
                ]
                assert not bad, (width, scheme, bad)
                context.close()
        finally:
            browser.close()
