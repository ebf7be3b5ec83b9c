"""Keeping the catalogues in step with the code: extract, update the .po files, compile.

Run from the top of a checkout: `python -m newsletter.i18n`. Translators then fill the
empty `msgstr` of each language's messages.po and run it again (it compiles the .mo).
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from newsletter.i18n import DOMAIN, LOCALE_DIR

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).resolve().parent / "babel.cfg"
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
    "tr": (2,),
    "N_": None,
}


def extract(root: Path = ROOT) -> Catalog:
    """Every marked message of the code and templates under `root`."""
    with CONFIG.open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    catalog = Catalog(project="newsletter", domain=DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(root), method_map, options_map, keywords=KEYWORDS, strip_comment_tags=True
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(language: str) -> Catalog:
    with po_path(language).open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def languages() -> list[str]:
    return sorted(p.name for p in LOCALE_DIR.iterdir() if (p / "LC_MESSAGES").is_dir())


def update(root: Path = ROOT) -> None:
    template = extract(root)
    for language in languages():
        catalog = read(language)
        catalog.update(template, no_fuzzy_matching=True)
        with po_path(language).open("wb") as handle:
            write_po(
                handle,
                catalog,
                width=100,
                omit_header=False,
                sort_output=True,
                include_lineno=False,
                ignore_obsolete=True,
            )
        po_path(language).with_suffix(".mo").write_bytes(compiled(read(language)))


if __name__ == "__main__":
    update()
