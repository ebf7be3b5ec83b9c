"""Languages of the reader-facing pages and system mails: gettext catalogues (Babel).

One place decides which language a reader gets and hands out translations:

- `translations(language)`: the compiled catalogue of a language, or of the default
  language (the first of NEWSLETTER_LANGUAGES) for one the service does not offer;
- `negotiate(accept_language, settings)`: a browser's Accept-Language header to one of
  the configured languages (Babel's `negotiate_locale`), else the default;
- `localized(env, language)`: a Jinja2 environment whose templates can say `_("…")` and
  `{% trans %}…{% endtrans %}` in that language (one overlay per language, cached, so
  concurrent renders in different languages never share installed translations);
- `tr(language, message, **values)`: the same for a string in Python code.

Catalogues live in `newsletter/i18n/locale/<lang>/LC_MESSAGES/messages.po`; the compiled
`.mo` beside each is committed (a plain `pip install .` needs no build step and no Babel
at build time), and tests/test_i18n.py fails when a `.mo` no longer matches its `.po` or
when a string marked in a template or in code has no Ukrainian translation. After
changing marked strings: `python -m newsletter.i18n` (extract, update, compile).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.core import Locale, UnknownLocaleError, negotiate_locale
from babel.support import NullTranslations, Translations
from jinja2 import Environment

from newsletter.config import Settings, get_settings

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
# The language the templates and code are written in: its catalogue is the identity.
SOURCE_LANGUAGE = "en"
MAX_HEADER = 500  # a longer Accept-Language is cut, not parsed (it is a header from anyone)


def default_language(settings: Settings | None = None) -> str:
    return (settings or get_settings()).language_codes[0]


def supported(language: str | None, settings: Settings | None = None) -> str | None:
    """The configured code for `language` (any case, "uk-UA" -> "uk"), or None."""
    if not language:
        return None
    codes = (settings or get_settings()).language_codes
    wanted = language.strip().lower().replace("_", "-")
    if wanted in codes:
        return wanted
    base = wanted.split("-", 1)[0]
    return base if base in codes else None


def choose(language: str | None, settings: Settings | None = None) -> str:
    """`language` when the service offers it, else the default language."""
    return supported(language, settings) or default_language(settings)


@lru_cache(maxsize=32)
def _load(language: str) -> NullTranslations:
    if language == SOURCE_LANGUAGE:
        # English is the source: its catalogue (if any) maps every message to itself.
        loaded = Translations.load(str(LOCALE_DIR), [language], DOMAIN)
        return loaded
    return Translations.load(str(LOCALE_DIR), [language.replace("-", "_")], DOMAIN)


def translations(language: str | None, settings: Settings | None = None) -> NullTranslations:
    """The catalogue of `language`, or of the default language for one not offered.

    A configured language without a catalogue yet gets the source text (English) rather
    than an error: a page in English beats no page.
    """
    return _load(choose(language, settings))


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags of an Accept-Language header, most wanted first ("*" and q=0 out)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:MAX_HEADER].split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(accept_language: str | None, settings: Settings | None = None) -> str:
    """The configured language a browser prefers most, else the default language."""
    settings = settings or get_settings()
    codes = list(settings.language_codes)
    found = negotiate_locale(parse_accept_language(accept_language), codes, sep="-")
    return choose(found, settings)


def N_(message: str) -> str:
    """Marks a message for the catalogue where it is written; it is translated where it is
    shown (e.g. an error page's title passed on to error_page)."""
    return message


@lru_cache(maxsize=32)
def language_name(code: str) -> str:
    """A language's name in itself ("Українська"), for a language switch."""
    try:
        name = Locale.parse(code.replace("-", "_")).get_display_name() or code
    except (ValueError, UnknownLocaleError):
        return code
    return name[:1].upper() + name[1:]


def tr(language: str | None, message: str, **values: Any) -> str:
    """`message` in `language`, with `%(name)s` placeholders filled from `values`."""
    text = translations(language).gettext(message)
    return text % values if values else text


def install(env: Environment, language: str | None) -> Environment:
    """Give an environment of one's own the i18n extension and `language`'s catalogue."""
    if "jinja2.ext.InternationalizationExtension" not in env.extensions:
        env.add_extension("jinja2.ext.i18n")
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


_LOCALIZED: dict[tuple[int, str], Environment] = {}


def localized(env: Environment, language: str | None) -> Environment:
    """An overlay of a shared environment rendering in `language` (cached per language).

    The overlay shares the loader and settings but has its own globals and template
    cache, so the base environment and the other languages are left as they were.
    """
    code = choose(language)
    key = (id(env), code)
    found = _LOCALIZED.get(key)
    if found is None:
        found = env.overlay(cache_size=400)
        found.globals = dict(env.globals)
        found.globals["language"] = code
        install(found, code)
        _LOCALIZED[key] = found
    return found
