"""The built-in SMTP catcher for the embedded default: keeps every message in a Maildir.

The web app shows the Maildir at /outbox, so a developer sees exactly what readers would.
"""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

MAX_MESSAGE = 10 * 1024 * 1024


class MaildirHandler:
    def __init__(self, folder: Path) -> None:
        for sub in ("tmp", "new", "cur"):  # Maildir(create=True) skips an existing folder
            (folder / sub).mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(str(folder), create=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if isinstance(data, str):
            data = data.encode()
        # The envelope is kept as trace headers, the way a final delivery agent records it.
        trace = (
            f"X-Envelope-From: <{envelope.mail_from}>\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        self.box.add(trace + data)
        return "250 OK: caught"


def start_catcher(folder: Path, host: str = "127.0.0.1", port: int = 1025) -> Controller:
    controller = Controller(
        MaildirHandler(folder), hostname=host, port=port, data_size_limit=MAX_MESSAGE
    )
    controller.start()
    return controller


@dataclass(frozen=True)
class CaughtMessage:
    key: str
    received: datetime
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def to(self) -> str:
        return str(self.message.get("X-Envelope-To", self.message.get("To", "")))

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        return body.get_content() if body is not None else ""


def read_outbox(folder: Path, limit: int = 200) -> list[CaughtMessage]:
    """Newest first."""
    if not (folder / "cur").is_dir():
        return []
    box = mailbox.Maildir(str(folder), create=False)
    items: list[CaughtMessage] = []
    for key in box.keys():
        path = _path(folder, key)
        if path is None:
            continue
        received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        items.append(CaughtMessage(key, received, _parse(path.read_bytes())))
    items.sort(key=lambda m: m.received, reverse=True)
    return items[:limit]


def read_caught(folder: Path, key: str) -> CaughtMessage | None:
    if not key.replace(".", "").replace(",", "").replace("_", "").replace("-", "").isalnum():
        return None
    path = _path(folder, key)
    if path is None:
        return None
    received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return CaughtMessage(key, received, _parse(path.read_bytes()))


def _parse(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=default)


def _path(folder: Path, key: str) -> Path | None:
    for sub in ("new", "cur"):
        for candidate in (folder / sub).glob(f"{key}*"):
            return candidate
    return None
