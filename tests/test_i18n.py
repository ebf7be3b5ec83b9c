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
