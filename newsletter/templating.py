"""Jinja2 environments for e-mails and web pages, found in a checkout or an installed package."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_PACKAGE = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """`templates/` at the top of a checkout, or `newsletter/templates` once installed."""
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if (candidate / "email").is_dir():
            return candidate
    raise RuntimeError("templates not found: reinstall the newsletter package")


@lru_cache(maxsize=1)
def email_env() -> Environment:
    # Autoescape for .html only: the text parts must show "&" and quotes as written.
    return Environment(
        loader=FileSystemLoader(str(templates_dir() / "email")),
        autoescape=select_autoescape(["html"], default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # shipped templates: no stat() of the file at every render
    )


@lru_cache(maxsize=1)
def web_env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates_dir() / "web")),
        autoescape=True,
        auto_reload=False,
    )
