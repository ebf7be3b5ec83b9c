"""A reader's own fields in a digest: attributes, the preference centre link, languages.

Through the operator's CLI, a real worker and a real SMTP server: a list's template
shows a reader attribute (with a fallback) and has a `uk/` folder; each reader gets
their own value (escaped in the HTML), the Ukrainian reader the Ukrainian digest, all
from one send with one ledger, and every message links to that reader's own
preference page. Composing with a send cancelled part-way gives each reader the carry
variant in their language.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.digests import fields, templates
from newsletter.digests.compose import compose_digest
from newsletter.digests.preview import parse_message, preview_message
from newsletter.errors import InvalidInput
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestLink,
    DigestStatus,
    DigestVariant,
    MailingList,
    Subscriber,
    Subscription,
    utcnow,
)
from newsletter.sending import testsend
from newsletter.sending.job import start_send
from newsletter.stories.drafts import StoryDraft
from newsletter.stories.store import store_stories
from newsletter.subscriptions.tokens import read_preferences_token
from tests.send_support import send_env, wait_status
from tests.services import AppProcesses, SmtpServer

SECRET = "test-secret-key-0123456789abcdef"  # send_env's
EXTENDS_HTML = '{% extends "builtin/digest/body.html" %}\n'
EXTENDS_TEXT = '{% extends "builtin/digest/body.txt" %}\n'


def template_folder(root: Path) -> Path:
    """A list folder whose masthead greets the reader by city, and a Ukrainian one."""
    own = root / "templates"
    (own / "uk").mkdir(parents=True)
    (own / "body.html").write_text(
        EXTENDS_HTML + '{% block masthead %}<tr><td class="mast">'
        'News for {{ reader.attr("city", "your city") }} '
        "(zone {{ reader.attributes.zone }})</td></tr>{% endblock %}\n",
        encoding="utf-8",
    )
    (own / "body.txt").write_text(
        EXTENDS_TEXT + "{% block masthead %}"
        'News for {{ reader.attributes.city | default("your city") }}\n\n{% endblock %}\n',
        encoding="utf-8",
    )
    (own / "uk" / "body.html").write_text(
        EXTENDS_HTML + '{% block masthead %}<tr><td class="mast">'
        'Новини для {{ reader.attr("city", "вашого міста") }}</td></tr>{% endblock %}\n',
        encoding="utf-8",
    )
    (own / "uk" / "body.txt").write_text(
        EXTENDS_TEXT + "{% block masthead %}"
        'Новини для {{ reader.attr("city", "вашого міста") }}\n\n{% endblock %}\n',
        encoding="utf-8",
    )
    (own / "uk" / "subject.txt").write_text("Новини: {{ lead.title }}\n", encoding="utf-8")
    return own


READERS = {
    # email: (attributes, language)
    "ann@example.org": ({"city": 'Kyiv <Podil> & "Co"', "zone": 3}, None),
    "bob@example.org": ({}, "en"),
    "olena@example.org": ({"city": "Львів"}, "uk"),
    "taras@example.org": ({}, "uk"),
}


def setup_list(
    folder: Path | None, readers: dict[str, tuple[dict[str, object], str | None]]
) -> dict[str, int]:
    """The list `news` with these confirmed readers; their subscription ids."""
    ids = {}
    with session_scope() as session:
        mlist = MailingList(
            slug="news", name="The Newsroom Daily", template_dir=str(folder) if folder else None
        )
        session.add(mlist)
        session.flush()
        for email, (attributes, language) in readers.items():
            sub = Subscriber(email=email, name="", attributes=attributes, language=language)
            session.add(sub)
            session.flush()
            subscription = Subscription(list_id=mlist.id, subscriber_id=sub.id, status="confirmed")
            session.add(subscription)
            session.flush()
            ids[email] = subscription.id
    return ids


def add_stories(*titles: str, ago: timedelta = timedelta(minutes=1)) -> None:
    drafts = [
        StoryDraft(t, f"{t}: the lede.", [], source=t, published_at=utcnow() - ago) for t in titles
    ]
    with session_scope() as session:
        store_stories(session, drafts)


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def preference_ids(text: str, base: str = "https://news.example.com") -> set[int]:
    tokens = re.findall(re.escape(base) + r"/preferences/(p2\.[0-9]+\.[A-Za-z0-9_-]+)", text)
    return {read_preferences_token(SECRET, t) for t in tokens}


def test_each_reader_gets_their_own_fields_and_language_in_one_send(
    database: str, data_dir: Path, tmp_path: Path
) -> None:
    ids = setup_list(template_folder(tmp_path), READERS)
    add_stories("Dam repairs finished ahead of winter")
    server = SmtpServer().start()
    app = AppProcesses(send_env(data_dir, server.url, database, None), tmp_path)
    try:
        app.start_worker("--concurrency", "1")
        app.run("digest", "send", "--list", "news")
        with session_scope() as session:
            digest_id = session.scalars(select(Digest.id)).one()  # one digest, one ledger
        wait_status(app, digest_id, ("sent",))
    finally:
        app.stop()
        server.stop()

    got = {m.rcpt_tos[0]: m.message for m in server.messages}
    assert sorted(got) == sorted(READERS)  # each once
    html = {e: body(m, "html") for e, m in got.items()}
    text = {e: body(m, "plain") for e, m in got.items()}
    subject = {e: str(m["Subject"]) for e, m in got.items()}

    # Ann's own city, escaped in the HTML part, as written in the text part.
    assert "News for Kyiv &lt;Podil&gt; &amp; &quot;Co&quot; (zone 3)" in html["ann@example.org"]
    assert 'News for Kyiv <Podil> & "Co"' in text["ann@example.org"]
    # Bob has no city: the fallback; no zone: nothing.
    assert "News for your city (zone )" in html["bob@example.org"]
    assert "News for your city\n" in text["bob@example.org"]
    # The Ukrainian readers: the uk/ folder, their own city or the Ukrainian fallback.
    assert "Новини для Львів" in html["olena@example.org"]
    assert "Новини для Львів" in text["olena@example.org"]
    assert "Новини для вашого міста" in html["taras@example.org"]
    assert subject["taras@example.org"].startswith("Новини: Dam repairs")
    assert subject["bob@example.org"].startswith("The Newsroom Daily: Dam repairs")
    assert 'lang="uk"' in html["olena@example.org"] and 'lang="en"' in html["ann@example.org"]
    for email in ("ann@example.org", "bob@example.org"):
        assert "Новини" not in html[email] + text[email] + subject[email]
    for email in READERS:
        assert "%%NL_" not in html[email] + text[email]
        # The preference link leads to this reader's own subscription, in both parts.
        assert preference_ids(text[email]) == {ids[email]}
        assert preference_ids(unescape(html[email])) == {ids[email]}
        assert "Manage your subscription" in html[email]

    with session_scope() as session:
        ledger = dict(
            session.execute(
                select(Subscriber.email, Delivery.variant)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.digest_id == digest_id)
            ).all()
        )
        languages = dict(
            session.execute(
                select(DigestVariant.number, DigestVariant.language).where(
                    DigestVariant.digest_id == digest_id
                )
            ).all()
        )
    assert languages == {1: "uk"}
    assert ledger == {
        "ann@example.org": 0,
        "bob@example.org": 0,
        "olena@example.org": 1,
        "taras@example.org": 1,
    }


def _cancel_reaching(digest: Digest, reached: set[str]) -> None:
    settings = get_settings()
    with session_scope() as session:
        current = session.get(Digest, digest.id)
        assert current is not None
        start_send(session, settings, current)
        rows = session.execute(
            select(Delivery, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.digest_id == digest.id)
        ).all()
        for row, email in rows:
            row.status = DeliveryStatus.sent if email in reached else DeliveryStatus.failed
        current.status = DigestStatus.cancelled


def _compose(at: timedelta) -> Digest:
    with session_scope() as session:
        mlist = session.scalars(select(MailingList)).one()
        digest = compose_digest(session, get_settings(), mlist, now=utcnow() - at)
        assert digest is not None
        session.expunge(digest)
        return digest


def test_carry_variants_in_each_language(database: str, tmp_path: Path) -> None:
    """A cancelled send reached one English and one Ukrainian reader: the next digest
    gives those two the new story only, in their language, the others everything."""
    readers: dict[str, tuple[dict[str, object], str | None]] = {
        "en1@example.org": ({}, None),
        "en2@example.org": ({}, "en"),
        "uk1@example.org": ({}, "uk"),
        "uk2@example.org": ({}, "uk"),
    }
    setup_list(template_folder(tmp_path), readers)
    add_stories("First story", ago=timedelta(minutes=10))
    one = _compose(timedelta(minutes=9))
    _cancel_reaching(one, {"en1@example.org", "uk1@example.org"})
    add_stories("Second story", ago=timedelta(minutes=8))
    two = _compose(timedelta(minutes=7))
    settings = get_settings()
    with session_scope() as session:
        digest = session.get(Digest, two.id)
        assert digest is not None
        start_send(session, settings, digest)
        variant_of = dict(
            session.execute(
                select(Subscriber.email, Delivery.variant)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.digest_id == two.id)
            ).all()
        )
        texts = {0: (digest.text, None)} | {
            v.number: (v.text, v.language)
            for v in session.scalars(select(DigestVariant).where(DigestVariant.digest_id == two.id))
        }
    gets = {
        email: (
            [t for t in ("First story", "Second story") if t in texts[v][0]],
            "Новини" in texts[v][0],
            texts[v][1],
        )
        for email, v in variant_of.items()
    }
    assert gets == {
        "en1@example.org": (["Second story"], False, None),
        "en2@example.org": (["First story", "Second story"], False, None),
        "uk1@example.org": (["Second story"], True, "uk"),
        "uk2@example.org": (["First story", "Second story"], True, "uk"),
    }


def test_one_language_used_keeps_one_digest(sqlite_db: str, tmp_path: Path) -> None:
    """A uk/ folder alone makes no variant while no reader of the list reads Ukrainian."""
    setup_list(
        template_folder(tmp_path), {"a@example.org": ({}, None), "b@example.org": ({}, "en")}
    )
    add_stories("Only story")
    digest = _compose(timedelta(0))
    with session_scope() as session:
        assert session.scalars(select(DigestVariant)).all() == []
    assert fields.PREFERENCES_URL in digest.html and fields.PREFERENCES_URL in digest.text


def test_preview_and_test_send_fill_sample_or_own_attributes(
    sqlite_db: str, tmp_path: Path
) -> None:
    setup_list(template_folder(tmp_path), {"ann@example.org": ({"city": "Odesa"}, None)})
    add_stories("Only story")
    digest = _compose(timedelta(0))
    settings = get_settings()
    with session_scope() as session:
        mlist = session.scalars(select(MailingList)).one()
        shown = preview_message(settings, mlist, digest, dkim_keys=())
        assert "News for [city] (zone [zone])" in shown.html
        assert "News for [city]" in shown.text
        assert f"{settings.base_url}/preferences/p2.0." in shown.text
        stored = session.get(Digest, digest.id)
        assert stored is not None
        raw, _ = testsend.test_message(settings, mlist, stored, "ann@example.org", dkim_keys=())
        assert "News for Odesa (zone [zone])" in body(parse_message(raw), "html")
        raw, _ = testsend.test_message(settings, mlist, stored, "editor@example.org", dkim_keys=())
        assert "News for [city]\n" in body(parse_message(raw), "plain")


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"subject.txt": "News for {{ reader.attributes.city }}"}, "same for every reader"),
        ({"subject.txt": "Hello {{ name }}"}, "same for every reader"),
        (
            {
                "body.txt": EXTENDS_TEXT
                + "{% block masthead %}{{ reader.attributes.Bad }}{% endblock %}"
            },
            "'Bad' is not an attribute name",
        ),
        (
            {
                "body.txt": EXTENDS_TEXT
                + "{% block masthead %}{{ reader.attributes.__class__ }}{% endblock %}"
            },
            "body.txt",
        ),
    ],
)
def test_a_template_misusing_reader_fields_is_refused_with_the_reason(
    sqlite_db: str, tmp_path: Path, files: dict[str, str], reason: str
) -> None:
    own = tmp_path / "own"
    own.mkdir()
    for name, content in files.items():
        (own / name).write_text(content, encoding="utf-8")
    setup_list(None, {"a@example.org": ({}, None)})
    from newsletter.digests.render import check_template_dir

    with session_scope() as session:
        mlist = session.scalars(select(MailingList)).one()
        with pytest.raises(InvalidInput) as refused:
            check_template_dir(get_settings(), mlist, str(own), now=utcnow())
    assert reason in str(refused.value)
    assert isinstance(refused.value, templates.TemplateRefused)


def test_click_tracking_rewrites_every_variant_and_keeps_the_readers_links(
    sqlite_db: str, tmp_path: Path
) -> None:
    """With track_clicks and track_opens: story links lead through /c/<reader>/<link>
    in every variant, one DigestLink per URL; unsubscribe and preference links stay
    direct; the open pixel carries the reader marker."""
    setup_list(
        template_folder(tmp_path), {"a@example.org": ({}, None), "b@example.org": ({}, "uk")}
    )
    with session_scope() as session:
        mlist = session.scalars(select(MailingList)).one()
        mlist.track_clicks = True
        mlist.track_opens = True
    add_stories("Only story")
    digest = _compose(timedelta(0))
    with session_scope() as session:
        variants = session.scalars(select(DigestVariant)).all()
        rows = session.scalars(select(DigestLink).where(DigestLink.digest_id == digest.id)).all()
        htmls = [digest.html, *(v.html for v in variants)]
    assert len(htmls) == 2  # the default language and Ukrainian
    base = get_settings().base_url
    assert rows and any(r.url == f"{base}/stories/only-story" for r in rows)
    story = next(r for r in rows if r.url == f"{base}/stories/only-story")
    assert story.story_id is not None
    for html in htmls:
        assert f'href="{base}/stories/only-story"' not in html
        assert f"{base}/c/{fields.READER}/" in html
        assert f'href="{fields.UNSUBSCRIBE_URL}"' in html
        assert f'href="{fields.PREFERENCES_URL}"' in html
        assert f"{base}/o/{fields.READER}.gif" in html
