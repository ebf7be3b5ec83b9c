"""The mailbox poller: bounces that land in a mailbox (IMAP or POP3 over TLS), run by beat.

NEWSLETTER_BOUNCE_MAILBOX_URL is ``imaps://user:password@host[:port]/FOLDER`` or
``pop3s://user:password@host[:port]``. Only TLS schemes are accepted: the password and
the readers' addresses must not cross the network in clear.

Each message is processed and committed in its own transaction *before* it is marked
(IMAP: ``\\Seen``; POP3, which has no flags: deleted at QUIT). A crash in between means
the message is read again next time, and the event fingerprints make that harmless. A
database failure leaves the message unmarked and stops the run. Mail anyone can send to
the mailbox is trusted only through its VERP token, as with the bounce-server.
"""

from __future__ import annotations

import imaplib
import logging
import poplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from newsletter.bounces.handling import record_rejection
from newsletter.bounces.inbound import handle_message
from newsletter.config import ConfigError, Settings
from newsletter.db import session_scope

log = logging.getLogger(__name__)
SOURCE = "mailbox"
PORTS = {"imaps": 993, "pop3s": 995}
MAX_PER_RUN = 500  # a backlog is worked off over several beats, not in one long run


@dataclass(frozen=True)
class MailboxConfig:
    scheme: str
    host: str
    port: int
    username: str
    password: str
    folder: str

    @classmethod
    def parse(cls, url: str) -> MailboxConfig:
        parts = urlsplit(url)
        if parts.scheme not in PORTS:
            raise ConfigError("NEWSLETTER_BOUNCE_MAILBOX_URL: scheme must be imaps or pop3s")
        if not parts.hostname or not parts.username or parts.password is None:
            raise ConfigError("NEWSLETTER_BOUNCE_MAILBOX_URL: needs user:password@host")
        try:
            port = parts.port or PORTS[parts.scheme]
        except ValueError:
            raise ConfigError("NEWSLETTER_BOUNCE_MAILBOX_URL: bad port") from None
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=port,
            username=unquote(parts.username),
            password=unquote(parts.password),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
        )

    def __repr__(self) -> str:  # never show the password
        return f"MailboxConfig({self.scheme}://{self.username}@{self.host}:{self.port})"


@dataclass
class PollReport:
    fetched: int = 0
    recorded: int = 0
    refused: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


def _tls(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.bounce_mailbox_ca_file:
        context.load_verify_locations(cafile=str(settings.bounce_mailbox_ca_file))
    return context


def poll_mailbox(settings: Settings, limit: int = MAX_PER_RUN) -> PollReport:
    """Fetch new messages, record their bounces, then mark them. Raises on connection or
    login failure (the beat task logs it and tries again next time)."""
    if not settings.bounce_mailbox_url:
        raise ConfigError("NEWSLETTER_BOUNCE_MAILBOX_URL is not set")
    config = MailboxConfig.parse(settings.bounce_mailbox_url)
    poll = _poll_imap if config.scheme == "imaps" else _poll_pop3
    report = PollReport()
    poll(config, _tls(settings), lambda raw: _process(settings, raw, report), limit)
    return report


def _process(settings: Settings, raw: bytes, report: PollReport) -> bool:
    """Record one message; True when it may be marked done (recorded or refused)."""
    report.fetched += 1
    if len(raw) > settings.bounce_max_bytes:
        status = "too-big"
    else:
        try:
            with session_scope() as db:
                status = handle_message(db, settings, raw, source=SOURCE).status
        except Exception:  # noqa: BLE001 - leave it in the mailbox for the next run
            log.exception("mailbox message could not be recorded; kept for the next poll")
            report.failed += 1
            return False
    report.statuses[status] = report.statuses.get(status, 0) + 1
    if status == "recorded":
        report.recorded += 1
    else:
        report.refused += 1
        with session_scope() as db:
            record_rejection(db, SOURCE, status)
    return True


def _poll_imap(
    config: MailboxConfig, tls: ssl.SSLContext, handle: Callable[[bytes], bool], limit: int
) -> None:
    with imaplib.IMAP4_SSL(config.host, config.port, ssl_context=tls, timeout=30) as imap:
        imap.login(config.username, config.password)
        status, _ = imap.select(_quote(config.folder))
        if status != "OK":
            raise ConfigError(f"mailbox folder {config.folder!r} cannot be opened")
        status, data = imap.uid("SEARCH", "UNSEEN")
        uids = data[0].split()[:limit] if status == "OK" and data and data[0] else []
        for uid in uids:
            status, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((p[1] for p in parts if isinstance(p, tuple)), None)
            if status != "OK" or raw is None:
                continue
            if not handle(raw):
                break  # our side is failing: stop, the rest waits for the next run
            imap.uid("STORE", uid, "+FLAGS.SILENT", "(\\Seen)")


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _poll_pop3(
    config: MailboxConfig, tls: ssl.SSLContext, handle: Callable[[bytes], bool], limit: int
) -> None:
    pop = poplib.POP3_SSL(config.host, config.port, context=tls, timeout=30)
    try:
        pop.user(config.username)
        pop.pass_(config.password)
        count, _size = pop.stat()
        for number in range(1, min(count, limit) + 1):
            _resp, lines, _octets = pop.retr(number)
            if not handle(b"\r\n".join(lines) + b"\r\n"):
                break
            pop.dele(number)
        pop.quit()  # deletions take effect only here, after everything was committed
    except BaseException:
        pop.close()  # no QUIT: the server keeps every message
        raise
