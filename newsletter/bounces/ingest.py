"""`newsletter bounces ingest FILE…`: .eml and .mbox files an operator has.

Everything is read and parsed before anything is written (parsing is pure), so a bad file
stops the command with its name and leaves the database untouched, and the good files go
in one transaction. An operator's old mailbox predates VERP or carries tokens signed with
another key, so here a bounce without a valid token is matched by the failed address:
the operator vouches for the file, unlike mail arriving from the internet.
"""

from __future__ import annotations

import mailbox
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from newsletter.bounces.inbound import handle_message
from newsletter.bounces.parse import BounceResult, analyse
from newsletter.config import Settings
from newsletter.errors import InvalidInput

SOURCE = "ingest"


@dataclass
class Parsed:
    path: Path
    index: int
    raw: bytes
    results: list[BounceResult]


@dataclass
class IngestReport:
    messages: int = 0
    skipped: list[str] = field(default_factory=list)  # "FILE#n: why"
    actions: Counter[str] = field(default_factory=Counter)


def read_messages(path: Path, max_bytes: int) -> list[bytes]:
    """The messages in one file; InvalidInput naming the file when it cannot be used."""
    try:
        if path.is_dir():
            raise InvalidInput("file", f"{path}: is a directory, not a message file")
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(5)
    except OSError as exc:
        raise InvalidInput("file", f"{path}: cannot be read ({exc.strerror})") from None
    if size == 0:
        raise InvalidInput("file", f"{path}: is empty")
    if path.suffix.lower() == ".mbox" or head == b"From ":
        try:
            box = mailbox.mbox(path, create=False)
            messages = [box.get_bytes(key) for key in box.keys()]
        except (OSError, mailbox.Error) as exc:
            raise InvalidInput("file", f"{path}: not a readable mbox ({exc})") from None
        if not messages:
            raise InvalidInput("file", f"{path}: the mbox holds no messages")
        return messages
    if size > max_bytes:
        raise InvalidInput("file", f"{path}: larger than {max_bytes} bytes")
    return [path.read_bytes()]


def parse_files(paths: list[Path], max_bytes: int) -> tuple[list[Parsed], list[str]]:
    """Parse everything; a file with no bounce at all is an input error."""
    parsed: list[Parsed] = []
    skipped: list[str] = []
    for path in paths:
        found = 0
        messages = read_messages(path, max_bytes)
        for index, raw in enumerate(messages, 1):
            results = analyse(raw[:max_bytes])
            label = f"{path}#{index}" if len(messages) > 1 else str(path)
            if not results:
                skipped.append(f"{label}: not a bounce, complaint or auto-reply")
                continue
            found += 1
            parsed.append(Parsed(path, index, raw, results))
        if not found:
            raise InvalidInput("file", f"{path}: no bounce, complaint or auto-reply found in it")
    return parsed, skipped


def ingest(session: Session, settings: Settings, parsed: list[Parsed]) -> IngestReport:
    report = IngestReport()
    for item in parsed:
        outcome = handle_message(
            session, settings, item.raw, source=SOURCE, match_address=True, results=item.results
        )
        report.messages += 1
        for handled in outcome.handled:
            report.actions[handled.action] += 1
    return report
