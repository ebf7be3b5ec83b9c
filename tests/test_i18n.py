"""Languages: the catalogues match the code, the compiled .mo match the .po, a browser's
Accept-Language picks the language, and pages and mails come out in it."""

from __future__ import annotations

import pytest

from newsletter import i18n
from newsletter.config import Settings
from newsletter.i18n import catalogues
from newsletter.mail.render import render_email


def _settings(languages: str = "en,uk") -> Settings:
    return Settings(languages=languages)  # type: ignore[call-arg]


def test_every_compiled_catalogue_matches_its_po():
    """The .mo files are committed (a plain `pip install .` needs no compile step); this
    fails when a .po was edited and `python -m newsletter.i18n` not run."""
    for language in catalogues.languages():
        committed = catalogues.po_path(language).with_suffix(".mo").read_bytes()
        assert committed == catalogues.compiled(catalogues.read(language)), (
            f"{language}: messages.mo is stale; run `python -m newsletter.i18n`"
        )


def test_every_marked_message_has_a_ukrainian_translation():
    extracted = catalogues.extract()
    ukrainian = catalogues.read("uk")
    untranslated = [
        m.id
        for m in extracted
        if m.id
        and (ukrainian.get(m.id, m.context) is None or not ukrainian.get(m.id, m.context).string)
    ]
    assert not untranslated, f"no Ukrainian for {untranslated[:5]}; run python -m newsletter.i18n"
    fuzzy = [m.id for m in ukrainian if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy translations are not used: {fuzzy[:5]}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("uk-UA,uk;q=0.9,en-US;q=0.8,en;q=0.7", "uk"),
        ("UK", "uk"),
        ("de-DE,de;q=0.9,uk;q=0.5", "uk"),
        ("en-GB,uk;q=0.9", "en"),
        ("uk;q=0, en;q=0.1", "en"),
        ("fr-FR", "en"),
        ("", "en"),
        (None, "en"),
        ("*", "en"),
        ("uk;q=abc, en", "en"),
        ("x" * 5000, "en"),
    ],
)
def test_accept_language_picks_an_offered_language_else_the_default(header, expected):
    assert i18n.negotiate(header, _settings()) == expected


def test_the_default_is_the_first_configured_language():
    assert i18n.negotiate("fr", _settings("uk,en")) == "uk"
    assert i18n.choose("pl", _settings("uk,en")) == "uk"
    assert i18n.translations("pl", _settings("uk,en")).gettext("Page not found") == (
        "Сторінку не знайдено"
    )


def test_a_language_not_offered_falls_back_to_the_default():
    assert i18n.tr("uk", "Page not found") == "Сторінку не знайдено"
    assert i18n.tr("uk-UA", "Page not found") == "Сторінку не знайдено"
    assert i18n.tr("fr", "Page not found") == "Page not found"
    assert i18n.tr(None, "Page not found") == "Page not found"


def test_the_same_template_renders_in_two_languages_side_by_side():
    from newsletter.templating import web_env

    source = '{{ _("Page not found") }} {{ language }} {{ _("Language") }}'
    uk = i18n.localized(web_env(), "uk").from_string(source).render()
    en = i18n.localized(web_env(), "en").from_string(source).render()
    assert uk == "Сторінку не знайдено uk Мова"
    assert en == "Page not found en Language"
    # The shared environment itself is left as it was.
    assert "_" not in web_env().globals


def test_a_translated_message_still_escapes_what_it_is_given():
    from newsletter.templating import web_env

    env = i18n.localized(web_env(), "uk")
    out = env.from_string('{{ _("Hello %(name)s", name=who) }}').render(who="<b>x</b>")
    assert out == "Hello &lt;b&gt;x&lt;/b&gt;"


def test_the_confirmation_mail_renders_in_ukrainian():
    context = {
        "name": "Олена",
        "email": "olena@example.com",
        "list_name": "Новини",
        "confirm_url": "https://news.example/confirm/t",
        "requested_at": "1 May",
        "requested_ip": None,
        "ttl_days": 7,
        "postal_address": "1 Street",
        "preferences_url": None,
    }
    uk = render_email("confirm", context, language="uk", inline=False)
    en = render_email("confirm", context, language="en", inline=False)
    assert uk.subject != en.subject
    assert "Новини" in uk.subject
    assert 'lang="uk"' in uk.html
    assert 'lang="en"' in en.html


# A Ukrainian reader, end to end: `newsletter web` and a worker as processes, real SMTP.


@pytest.fixture
def running(tmp_path, smtp_server):
    from tests.services import AppProcesses

    env = {
        "NEWSLETTER_DATA_DIR": str(tmp_path / "data"),
        "NEWSLETTER_SMTP_URL": smtp_server.url,
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'newsletter.db'}",
    }
    app = AppProcesses(env, tmp_path)
    try:
        app.run("db", "upgrade")
        app.run("lists", "create", "morning", "--name", "Ранкові новини", "--welcome")
        app.start_web()
        app.start_worker("--concurrency", "1")
        yield app
    finally:
        app.stop()


@pytest.mark.timeout(240)
def test_a_ukrainian_browser_gets_everything_in_ukrainian(running, smtp_server):
    import re

    import httpx

    uk = {"Accept-Language": "uk-UA,uk;q=0.9,en;q=0.5"}
    with httpx.Client(base_url=running.base_url, timeout=10, headers=uk) as browser:
        form = browser.get("/subscribe")
        assert form.status_code == 200
        assert '<html lang="uk">' in form.text and "Адреса електронної пошти" in form.text
        assert form.headers["Content-Language"] == "uk"
        assert 'hreflang="en"' in form.text  # the switch to English
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        done = browser.post(
            "/subscribe",
            data={
                "email": "olena@example.org",
                "name": "Олена",
                "list": "morning",
                "csrf_token": token,
                "timezone": "Europe/Kyiv",
            },
        )
        assert done.status_code == 200 and "Перевірте пошту" in done.text

        (mail,) = smtp_server.wait_for(lambda m: len(m) >= 1)
        msg = mail.message
        assert msg["Subject"] == "Підтвердьте, будь ласка, підписку на Ранкові новини"
        text = msg.get_body(("plain",)).get_content()
        assert text.startswith("Вітаємо, Олена!")
        assert 'lang="uk"' in msg.get_body(("html",)).get_content()
        link = re.search(r"(/confirm/\S+)", text).group(1)

        # The confirm page is in her language even from a browser that asks for English.
        page = browser.get(link, headers={"Accept-Language": "en"})
        assert "Так, підпишіть мене" in page.text
        assert "Ви підписані" in browser.post(link).text

        welcome = smtp_server.wait_for(lambda m: len(m) >= 2)[1].message
        assert welcome["Subject"] == "Вітаємо в Ранкові новини"
        assert "Дякуємо за підтвердження" in welcome.get_body(("plain",)).get_content()

    import sqlite3

    db = sqlite3.connect(running.env["NEWSLETTER_DATABASE_URL"].removeprefix("sqlite:///"))
    try:
        stored = db.execute(
            "SELECT language, timezone FROM subscribers WHERE email = 'olena@example.org'"
        ).fetchall()
    finally:
        db.close()
    assert stored == [("uk", "Europe/Kyiv")]  # from Accept-Language and the browser's zone


def test_the_language_switch_and_an_english_browser(sqlite_db: str):
    """?lang= picks the page's language whatever the browser says; the form carries it."""
    from fastapi.testclient import TestClient

    from newsletter.web.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        page = client.get("/preferences", headers={"Accept-Language": "en-GB"})
        assert '<html lang="en">' in page.text and "Manage your subscriptions" in page.text
        switched = client.get("/preferences?lang=uk", headers={"Accept-Language": "en-GB"})
        assert '<html lang="uk">' in switched.text and "Керування підписками" in switched.text
        assert 'name="language" value="uk"' in switched.text
        missing = client.get("/no-such-page", headers={"Accept-Language": "uk"})
        assert missing.status_code == 404 and "Сторінку не знайдено" in missing.text
