"""A relay that stops answering: a send's connection waits its timeout, then gives up.

Before the content is written, that is an unreachable relay (nothing was sent); after
it, the message is deferred and never written again on that connection, since the
relay may have taken it. The relay is a small asyncio SMTP server in this file that
goes silent at a chosen step.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from newsletter.config import SmtpConfig
from newsletter.sending.aiosmtp import AsyncConnection
from newsletter.sending.transport import SmtpUnavailable

CONTENT = b"Subject: hello\r\n\r\nHello.\r\n.\r\n"


class SilentRelay:
    """Answers like a relay up to `silent_at` ("greeting", "rcpt" or "content"), then
    reads on and says nothing; counts the contents it was sent."""

    def __init__(self, silent_at: str) -> None:
        self.silent_at = silent_at
        self.contents = 0
        self.port = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.silent_at != "greeting":
            writer.write(b"220 relay\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if self.silent_at == "greeting":
                continue
            if verb == b"EHLO":
                writer.write(b"250-relay\r\n250 PIPELINING\r\n")
            elif verb == b"RCPT" and self.silent_at == "rcpt":
                continue
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                while (data := await reader.readline()) and data != b".\r\n":
                    pass
                self.contents += 1
                if self.silent_at != "content":
                    writer.write(b"250 queued\r\n")
            else:
                writer.write(b"250 ok\r\n")
        writer.close()


async def _deliver(silent_at: str, timeout: float) -> tuple[object, float, int]:
    relay = SilentRelay(silent_at)
    server = await relay.start()
    conn = AsyncConnection(SmtpConfig(f"smtp://127.0.0.1:{relay.port}"), timeout=timeout)
    started = time.monotonic()
    try:
        try:
            result: object = await conn.deliver(CONTENT, "b@example.com", "r@example.org")
        except SmtpUnavailable as exc:
            result = exc
        return result, time.monotonic() - started, relay.contents
    finally:
        conn.discard()
        server.close()


def test_silent_after_the_content_defers_the_message_after_the_timeout() -> None:
    attempt, waited, contents = asyncio.run(_deliver("content", timeout=0.5))
    assert getattr(attempt, "status", None) == "deferred", attempt
    assert "connection lost" in getattr(attempt, "reply", "")
    assert 0.45 <= waited < 5
    assert contents == 1  # written once, never again on a connection in doubt


@pytest.mark.parametrize("silent_at", ["greeting", "rcpt"])
def test_silent_before_the_content_sends_nothing(silent_at: str) -> None:
    outcome, waited, contents = asyncio.run(_deliver(silent_at, timeout=0.5))
    assert contents == 0
    assert 0.45 <= waited < 5
    if silent_at == "greeting":
        assert isinstance(outcome, SmtpUnavailable)  # the send pauses as for an outage
    else:
        assert getattr(outcome, "status", None) == "deferred", outcome
