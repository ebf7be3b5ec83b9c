"""Which format an input is, and its parser: every input is parsed and checked in full
before anything is written, so a bad file in a batch leaves the store untouched.
"""

from __future__ import annotations

from pathlib import Path

from newsletter.stories.drafts import StoryDraft, StoryInputError, decode_text
from newsletter.stories.json_format import parse_json
from newsletter.stories.markdown import parse_markdown
from newsletter.stories.text import parse_plain

FORMATS = ("text", "markdown", "json")


def detect_format(text: str, filename: str = "") -> str:
    suffix = Path(filename).suffix.lower()
    if suffix in (".md", ".markdown"):
        return "markdown"
    if suffix == ".json":
        return "json"
    head = text.lstrip()
    if head.startswith("---\n") or text.startswith("---\n"):
        return "markdown"
    if head[:1] in "{[":
        return "json"
    return "text"


def parse_story_bytes(data: bytes, source: str, fmt: str | None = None) -> list[StoryDraft]:
    """One input (a file or an HTTP body) as stories; raises StoryInputError naming source."""
    text = decode_text(data, source)
    fmt = fmt or detect_format(text, source)
    if fmt == "markdown":
        return [parse_markdown(text, source)]
    if fmt == "json":
        return parse_json(text, source)
    if fmt == "text":
        return [parse_plain(text, source)]
    raise StoryInputError(source, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def parse_story_file(path: Path) -> list[StoryDraft]:
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StoryInputError(source, "no such file") from None
    except IsADirectoryError:
        raise StoryInputError(source, "is a directory, not a story file") from None
    except OSError as exc:
        raise StoryInputError(source, f"cannot be read ({exc.strerror})") from None
    return parse_story_bytes(data, source)
