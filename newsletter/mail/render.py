"""Render an e-mail kind from templates/email/<kind>/ in a language, and inline its CSS in
one place."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment

from newsletter.i18n import localized
from newsletter.templating import email_env

# premailer warns about every CSS property mail clients may ignore; it is noise here.
logging.getLogger("premailer").setLevel(logging.ERROR)
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def inline_css(html: str) -> str:
    """Style rules onto elements, in one place for every kind of mail.

    Many clients drop <style> blocks, so rules are moved onto the elements and the
    original block goes (every byte counts against Gmail's clip limit); what cannot be
    inlined, the media queries for dark mode and narrow screens, stays in a <style>.
    width attributes are kept because Outlook needs them for a fixed column.
    """
    # Imported here: premailer brings lxml, cssutils and requests (some 20 MB), which a
    # worker that only sends (the digest is inlined once, at compose time) never needs.
    from premailer import Premailer

    inlined: object = Premailer(
        html,
        keep_style_tags=False,
        strip_important=False,
        remove_classes=False,
        cssutils_logging_level=logging.CRITICAL,
        disable_validation=True,
        disable_basic_attributes=["width"],
        allow_network=False,
    ).transform(pretty_print=False)
    assert isinstance(inlined, str)
    # lxml drops the doctype; without it clients render in quirks mode.
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = "<!DOCTYPE html>\n" + inlined
    return inlined


def render_email(
    kind: str,
    context: dict[str, Any],
    *,
    inline: bool = True,
    language: str | None = None,
    env: Environment | None = None,
) -> Rendered:
    """The three parts of `kind` in `language` (the default language when None or not
    offered): templates say `_("…")` / `{% trans %}` and see `language`.

    `env` is another environment to load `kind` from (a list's own folder in a sandbox);
    by default the built-in templates/email/.
    """
    env = localized(env or email_env(), language)
    subject = env.get_template(f"{kind}/subject.txt").render(context)
    text = env.get_template(f"{kind}/body.txt").render(context)
    html = env.get_template(f"{kind}/body.html").render(context)
    # A subject is one line whatever a template or its data holds.
    subject = " ".join(subject.split())
    return Rendered(subject=subject, text=text, html=inline_css(html) if inline else html)
