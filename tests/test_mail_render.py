"""The service's own mails (confirmation, preference link, sunset question, welcome) are
inlined by premailer once per page shape and filled with each reader's strings after:
what a reader gets must be what premailer makes of their own page, whatever the strings
hold, and one reader's strings never reach another's mail."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import Environment
from lxml import html as lxml_html

from newsletter.mail import render
from newsletter.mail.render import inline_css, render_email

NASTY = [
    "Ann",
    "a",  # a string the page's own markup is full of
    '<b>O\'Brien & "Sons"</b>',
    "Олена Петренко",
    "{{ name }} %(email)s",
]


def _context(kind: str, name: str) -> dict[str, Any]:
    base = "https://news.example.org"
    email = f"reader+{len(name)}@example.org"
    common = {"name": name, "email": email, "postal_address": "1 Press Row, <Kyiv> & Co"}
    if kind == "confirm":
        return common | {
            "list_name": "Morning & <Brief>",
            "confirm_url": f'{base}/confirm/tok?x=1&y="2"',
            "requested_at": "1 December 2026, 10:00 UTC",
            "requested_ip": "203.0.113.9" if len(name) % 2 else None,
            "ttl_days": 7,
            "preferences_url": None,
        }
    if kind == "preferences":
        return common | {"preferences_url": f"{base}/preferences/p&q"}
    if kind == "sunset":
        return common | {
            "list_name": "Evening <Digest>",
            "keep_url": f"{base}/sunset/k",
            "preferences_url": f"{base}/preferences/k",
            "unsubscribe_url": f"{base}/unsubscribe/u",
            "digests": 12,
            "grace_days": 14,
        }
    return common | {
        "list_name": "Weekly",
        "list_description": "Stories & <notes>" if name else "",
        "unsubscribe_url": f"{base}/unsubscribe/u",
        "preferences_url": f"{base}/preferences/p",
    }


def _tree(page: str) -> list[tuple[Any, ...]]:
    """What a mail client builds from the page: elements, attributes and text."""
    return [
        (el.tag, sorted(el.attrib.items()), (el.text or "").strip(), (el.tail or "").strip())
        for el in lxml_html.document_fromstring(page).iter()
    ]


@pytest.mark.parametrize("kind", ["confirm", "preferences", "sunset", "welcome"])
@pytest.mark.parametrize("language", [None, "uk"])
def test_every_reader_gets_what_premailer_makes_of_their_own_page(
    kind: str, language: str | None
) -> None:
    render._INLINED.clear()
    for name in NASTY:
        context = _context(kind, name)
        mail = render_email(kind, context, language=language).html
        reference = inline_css(render_email(kind, context, language=language, inline=False).html)
        assert _tree(mail) == _tree(reference), name
        assert render._MARK not in mail
        text = lxml_html.document_fromstring(mail).text_content()
        assert context["email"] in text
        if name and kind != "preferences":
            assert name in text  # shown as written, markup and all, never as markup
    assert lxml_html.document_fromstring(mail).find(".//b") is None
    # Premailer ran once per page shape, not once per reader: the confirmation has two
    # (with and without the address the request came from), the others one.
    assert len(render._INLINED) == (2 if kind == "confirm" else 1)


def test_a_template_that_transforms_a_value_still_gets_the_readers_own() -> None:
    """A value a template changes (a filter, a method) reaches the page as that reader's;
    such a page is inlined for itself and is right all the same."""
    template = Environment(autoescape=True).from_string(
        "<html><head><style>p { color: #123456; }</style></head>"
        "<body><p>{{ name }}</p><p>{{ name|upper }}</p><p>{{ name|length }}</p></body></html>"
    )
    render._INLINED.clear()
    for name in ("ann", "<bob>"):
        mail = render._inlined_once(template, {"name": name})
        assert _tree(mail) == _tree(inline_css(template.render(name=name)))
        texts = [p.text_content() for p in lxml_html.document_fromstring(mail).iter("p")]
        assert texts == [name, name.upper(), str(len(name))]
        assert 'style="color:#123456"' in mail
