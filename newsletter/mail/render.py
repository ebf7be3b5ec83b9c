"""Render an e-mail kind from templates/email/<kind>/ in a language, and inline its CSS in
one place."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, Template

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
    builtin = env is None
    env = localized(env or email_env(), language)
    subject = env.get_template(f"{kind}/subject.txt").render(context)
    text = env.get_template(f"{kind}/body.txt").render(context)
    body = env.get_template(f"{kind}/body.html")
    if not inline:
        html = body.render(context)
    elif builtin:
        html = _inlined_once(body, context)
    else:  # a list's own templates: their CSS may select on what the values say
        html = inline_css(body.render(context))
    # A subject is one line whatever a template or its data holds.
    subject = " ".join(subject.split())
    return Rendered(subject=subject, text=text, html=html)


# Inlining CSS with premailer took a third of a confirmation mail's CPU, and its result is
# the same for every reader but for the reader's own strings. So the body is rendered
# with each string value standing in as a marker, the markers' page is inlined once and
# kept, and each reader's escaped values go where the markers came out. The marker is
# new in each process, so no template text can hold it.
_MARK = f"x{secrets.token_hex(6)}v"
_MARKED = re.compile(re.escape(_MARK) + r"(\d+)z")
_INLINED: dict[str, str] = {}
_INLINED_MAX = 64


class _Slot(str):
    """A context string that is its own value to every test, filter and method a template
    applies (anything made from it carries the real value into the page, which is then
    simply not shared), but escapes, as `{{ value }}` does in HTML, to its marker."""

    marker: str

    def __html__(self) -> str:
        return self.marker


def _inlined_once(template: Template, context: dict[str, Any]) -> str:
    """``inline_css(template.render(context))``, with premailer run once per page shape
    (see above). When a marker does not come out of premailer as it went in, the page is
    inlined as rendered."""
    values: list[str] = []
    marked = dict(context)
    for key, value in context.items():
        if type(value) is str and value:
            slot = _Slot(value)
            slot.marker = f"{_MARK}{len(values)}z"
            marked[key] = slot
            values.append(value)
    page = template.render(marked)
    inlined = _INLINED.get(page)
    if inlined is None:
        inlined = inline_css(page)
        if _MARKED.findall(inlined) != _MARKED.findall(page):
            return inline_css(template.render(context))
        if len(_INLINED) >= _INLINED_MAX:
            _INLINED.clear()
        _INLINED[page] = inlined
    escaped = [_escape(value) for value in values]
    return _MARKED.sub(lambda found: escaped[int(found.group(1))], inlined)


def _escape(value: str) -> str:
    """As lxml writes text and attribute values (premailer's output: attributes always in
    double quotes, so an apostrophe stays as written)."""
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
