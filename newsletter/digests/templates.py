"""A list's own digest templates: its folder first, the built-in ones behind it.

An operator may give a list a folder (MailingList.template_dir) with any of
subject.txt, body.txt and body.html. A file there replaces the built-in one of that
name; to change one part of the layout it extends the built-in file and overrides a
block, so the rest keeps up with the built-in templates:

    {% extends "builtin/digest/body.html" %}
    {% block masthead %}<tr><td class="mast">Our own masthead</td></tr>{% endblock %}

The built-in blocks are named in templates/email/digest/body.html and body.txt.

A reader's own values are markers (digests/fields.py) filled in per message by the
sending fast path, never rendered per reader: `{{ name }}`, `{{ email }}`,
`{{ unsubscribe_url }}`, `{{ preferences_url }}` (the reader's preference centre), and
the same as `reader.name`, `reader.email`, `reader.unsubscribe_url`,
`reader.preferences_url`. Attributes (Subscriber.attributes) are
`{{ reader.attributes.city }}` (empty for a reader without one), with a fallback
`{{ reader.attr("city", "your city") }}` or `{{ reader.attributes.city | default("your
city") }}`. A template cannot test a reader's value (`{% if reader.attributes.city %}`,
`reader.attributes.city or "…"` are always true: the value is not known when the digest
is rendered, once for every reader); use the fallback instead. The subject is the same
for every reader and holds no reader field.

Languages: a list's folder may have a subfolder per language of NEWSLETTER_LANGUAGES
(`uk/`, …) with any of the three files; readers of that language (Subscriber.language)
get the digest rendered with those files first, then the folder's own, then the
built-in ones. A language file extends the built-in one by its full name
(`{% extends "builtin/digest/body.html" %}`), like the folder's.

Why a sandbox: the folder is written by an operator, not by us, and a template must
not reach Python's internals (`{{ ''.__class__.__mro__ }}`) from the process that holds
the database, the secret key and the DKIM keys. SandboxedEnvironment refuses attributes
starting with "_" and the unsafe ones of functions and frames; StrictUndefined makes
such an access an error rather than an empty string, so the template is refused with
the reason instead of sending something silently broken.

Why refuse rather than repair: a digest without the unsubscribe link or the postal
address breaks the law in many places (CAN-SPAM, PECR) and one past the size budget is
clipped by Gmail, hiding the footer. So the output of a list's templates is checked when
the folder is set (with sample stories, digests/render.py check_template_dir) and again
on every compose (check_output), and refused with one line naming the file and line.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from types import TracebackType

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2.exceptions import TemplateRuntimeError
from jinja2.filters import do_default
from jinja2.sandbox import SandboxedEnvironment
from lxml import html as lxml_html

from newsletter.digests import fields
from newsletter.errors import InvalidInput
from newsletter.subscriptions.attributes import NAME as _ATTRIBUTE_NAME
from newsletter.subscriptions.attributes import RESERVED as RESERVED_ATTRIBUTES
from newsletter.templating import templates_dir

_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*\Z")

KIND = "digest"
NAMES = ("subject.txt", "body.txt", "body.html")
BUILTIN = "builtin"  # prefix under which the built-in templates stay reachable
MAX_TEMPLATE_BYTES = 256 * 1024  # a template file larger than this is not a template


class TemplateRefused(InvalidInput):
    """A list's templates that cannot make a lawful digest; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__("template_dir", " ".join(message.split()))


class AttributeMarker(str):
    """The marker of a reader attribute, as `reader.attributes.<name>` gives it; the
    `default` filter turns it into the marker with a fallback."""

    attribute_name: str

    def __new__(cls, name: str) -> AttributeMarker:
        if not _ATTRIBUTE_NAME.match(name) or name in RESERVED_ATTRIBUTES:
            raise TemplateRuntimeError(
                f"{name!r} is not an attribute name (lower-case letters, digits and _, "
                "starting with a letter, at most 40 characters)"
            )
        made = super().__new__(cls, fields.attribute(name))
        made.attribute_name = name
        return made


class ReaderAttributes:
    """`reader.attributes`: any attribute name gives its marker."""

    def __getattr__(self, name: str) -> AttributeMarker:
        if name.startswith("_"):
            raise AttributeError(name)
        return AttributeMarker(name)

    def __getitem__(self, name: str) -> AttributeMarker:
        return AttributeMarker(str(name))


class Reader:
    """`reader` in a digest template: the reader's own values, as markers."""

    name = fields.NAME
    email = fields.EMAIL
    unsubscribe_url = fields.UNSUBSCRIBE_URL
    preferences_url = fields.PREFERENCES_URL
    attributes = ReaderAttributes()

    def attr(self, name: str, fallback: str = "") -> str:
        """An attribute, shown as `fallback` to a reader who has no value for it."""
        return fields.attribute(AttributeMarker(str(name)).attribute_name, str(fallback))


READER = Reader()


def _default(value: object, default_value: object = "", boolean: bool = False) -> object:
    """Jinja's `default`, which also gives a reader attribute its fallback."""
    if isinstance(value, AttributeMarker):
        return fields.attribute(value.attribute_name, str(default_value))
    return do_default(value, default_value, boolean)


def language_folder(folder: str | None, language: str | None) -> str | None:
    """The list's subfolder for `language` when it holds any digest template."""
    if not folder or not language or not _LANGUAGE.match(language):
        return None
    path = os.path.join(folder, language)
    if any(os.path.isfile(os.path.join(path, name)) for name in NAMES):
        return path
    return None


@lru_cache(maxsize=64)
def digest_env(folder: str | None = None, language: str | None = None) -> SandboxedEnvironment:
    """The environment a list's digest renders in: the folder's subfolder for
    `language` if it has one, `folder` (a list's own templates), then the built-in
    digest templates by their plain names, and every built-in e-mail template as
    "builtin/<kind>/<name>" for `{% extends %}`.

    Cached per folder and language; FileSystemLoader notices a changed file by its mtime.
    """
    email = str(templates_dir() / "email")
    loaders: list[BaseLoader] = []
    own_language = language_folder(folder, language)
    if own_language:
        loaders.append(FileSystemLoader(own_language))
    if folder:
        loaders.append(FileSystemLoader(folder))
    loaders.append(PrefixLoader({BUILTIN: FileSystemLoader(email)}))
    loaders.append(FileSystemLoader(os.path.join(email, KIND)))
    # Autoescape for .html only: the text parts must show "&" and quotes as written.
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html"], default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["default"] = env.filters["d"] = _default
    return env


def where(folder: str | None) -> str:
    """How a refusal names the templates it is about."""
    return f"template folder {folder}: " if folder else "built-in digest templates: "


def _template_frame(tb: TracebackType | None) -> tuple[str, int] | None:
    """The innermost traceback frame that runs template code (Jinja rewrites those
    frames to the template's file name and line)."""
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in ("top-level template code",) or code.co_name.startswith("block "):
            found = (code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _short(path: str | None, folder: str | None) -> str:
    if not path:
        return "a template"
    if folder and path.startswith(folder.rstrip(os.sep) + os.sep):
        return path[len(folder.rstrip(os.sep)) + 1 :]
    builtin = str(templates_dir() / "email") + os.sep
    if path.startswith(builtin):
        return f"{BUILTIN}/{path[len(builtin) :]}"
    return path


def refusal(exc: TemplateError, folder: str | None) -> TemplateRefused:
    """One line for the operator: which file, which line, what is wrong."""
    if isinstance(exc, TemplateSyntaxError):
        name = _short(exc.filename or exc.name, folder)
        return TemplateRefused(
            f"{where(folder)}{name}, line {exc.lineno}: syntax error: {exc.message}"
        )
    if isinstance(exc, TemplateNotFound):
        return TemplateRefused(f"{where(folder)}there is no template {exc.name!r} to use")
    frame = _template_frame(exc.__traceback__)
    at = f"{_short(frame[0], folder)}, line {frame[1]}: " if frame else ""
    return TemplateRefused(f"{where(folder)}{at}{exc.message or exc.__class__.__name__}")


def _loop(folder: str | None) -> TemplateRefused:
    return TemplateRefused(
        f"{where(folder)}a template extends or includes itself; a list's body.html "
        f'extends "{BUILTIN}/{KIND}/body.html" (and body.txt, subject.txt alike)'
    )


def load(env: SandboxedEnvironment, name: str, folder: str | None) -> Template:
    try:
        return env.get_template(name)
    except TemplateError as exc:
        raise refusal(exc, folder) from None
    except RecursionError:
        raise _loop(folder) from None


def render(template: Template, context: dict[str, object], folder: str | None) -> str:
    """Render, turning any template error (undefined name, unsafe attribute, a filter
    on the wrong type) into a refusal naming the file and line."""
    try:
        return template.render(context)
    except TemplateError as exc:
        raise refusal(exc, folder) from None
    except RecursionError:
        raise _loop(folder) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        frame = _template_frame(exc.__traceback__)
        at = f"{_short(frame[0], folder)}, line {frame[1]}: " if frame else ""
        raise TemplateRefused(f"{where(folder)}{at}{exc}") from None


def check_folder(value: str) -> str:
    """The absolute path of a template folder an operator names, or a refusal."""
    raw = (value or "").strip()
    if not raw:
        raise TemplateRefused("A template folder needs a path.")
    path = Path(raw).expanduser()
    try:
        path = path.resolve()
        is_dir = path.is_dir()
    except OSError as exc:
        raise TemplateRefused(f"template folder {raw}: {exc.strerror or exc}") from None
    if not is_dir:
        raise TemplateRefused(f"template folder {path}: not a folder (or not there)")
    if len(str(path)) > 1000:
        raise TemplateRefused("A template folder's path is at most 1000 characters.")
    present = [n for n in NAMES if (path / n).is_file()]
    if not present:
        raise TemplateRefused(
            f"template folder {path}: has none of {', '.join(NAMES)}; nothing to use"
        )
    for name in present:
        file = path / name
        try:
            size = file.stat().st_size
            with file.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise TemplateRefused(
                f"template folder {path}: {name} cannot be read ({exc.strerror})"
            ) from None
        if size > MAX_TEMPLATE_BYTES:
            raise TemplateRefused(
                f"template folder {path}: {name} is {size:,} bytes, "
                f"more than a template may be ({MAX_TEMPLATE_BYTES:,})"
            )
    return str(path)


def check_still_there(folder: str | None) -> None:
    """A list's folder that went away (another host, a removed checkout) is refused, not
    quietly replaced by the built-in templates."""
    if folder and not os.path.isdir(folder):
        raise TemplateRefused(
            f"template folder {folder}: not there any more (lists update SLUG "
            "--template-dir none goes back to the built-in templates)"
        )


def _visible_text(document: lxml_html.HtmlElement) -> str:
    """What a reader sees: the body's text without comments, styles and scripts."""
    body = document.find("body")
    root = body if body is not None else document
    parts: list[str] = []
    for node in root.iter():
        if not isinstance(node.tag, str) or node.tag in ("style", "script", "title", "head"):
            if node.tail:
                parts.append(node.tail)
            continue
        if node.text:
            parts.append(node.text)
        if node.tail:
            parts.append(node.tail)
    return " ".join(" ".join(parts).split())


def check_output(
    html: str, text: str, *, postal_address: str, budget: int, folder: str | None
) -> None:
    """Refuse a digest that lacks the unsubscribe link or the postal address in either
    part, or whose HTML is over the budget (found after cutting stories to the bone)."""
    at = where(folder)
    size = len(html.encode())
    if size > budget:
        raise TemplateRefused(
            f"{at}the HTML is {size:,} bytes even with every story cut to its lede, "
            f"over the {budget:,}-byte budget (Gmail clips mail at {102 * 1024:,} bytes)"
        )
    try:
        document = lxml_html.document_fromstring(html)
    except (ValueError, TypeError):
        raise TemplateRefused(f"{at}body.html does not make an HTML document") from None
    links = [a.get("href", "").strip() for a in document.iter("a")]
    if fields.UNSUBSCRIBE_URL not in links:
        raise TemplateRefused(
            f'{at}body.html has no unsubscribe link (<a href="{{{{ unsubscribe_url }}}}">)'
        )
    if fields.UNSUBSCRIBE_URL not in text:
        raise TemplateRefused(f"{at}body.txt does not show {{{{ unsubscribe_url }}}}")
    postal = " ".join(postal_address.split())
    if postal and postal not in _visible_text(document):
        raise TemplateRefused(
            f"{at}body.html does not show the postal address ({{{{ postal_address }}}})"
        )
    if postal and postal not in " ".join(text.split()):
        raise TemplateRefused(
            f"{at}body.txt does not show the postal address ({{{{ postal_address }}}})"
        )
