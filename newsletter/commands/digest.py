"""`newsletter digest preview|test|send`: a digest out, to a file, to one address, to the list."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from newsletter.commands.common import InputError, ServiceError, emit_json, handled, settings
from newsletter.commands.sends import enqueue, print_status, status_of

PREVIEW_VALUES_EMAIL = "reader@example.com"


@click.group()
def digest() -> None:
    """Digests: preview (and, from the sending module, test and send)."""


@digest.command("preview")
@click.option("--list", "list_slug", required=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="HTML file to write (default: <list>-preview.html); the text goes beside it as .txt.",
)
@handled
def digest_preview(list_slug: str, out: Path | None) -> None:
    """Render the next digest without storing it; it uses no stories up."""
    from newsletter.db import session_scope
    from newsletter.digests import fields as placeholders
    from newsletter.digests.compose import preview_digest
    from newsletter.digests.fields import personalise
    from newsletter.digests.render import GMAIL_CLIP
    from newsletter.subscriptions.lists import find_list

    s = settings()
    with session_scope() as session:
        mailing_list = find_list(session, list_slug)
        composed = preview_digest(session, s, mailing_list)
    if composed is None:
        click.echo(f"{list_slug}: no new stories since the previous digest; no digest to preview")
        return
    values = {
        placeholders.NAME: "",
        placeholders.EMAIL: PREVIEW_VALUES_EMAIL,
        placeholders.UNSUBSCRIBE_URL: f"{s.base_url}/unsubscribe/preview",
    }
    html, text = personalise(composed.html, composed.text, values)
    out = out or Path(f"{list_slug}-preview.html")
    text_out = out.with_suffix(".txt")
    try:
        out.write_text(html, encoding="utf-8")
        text_out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror})") from None
    click.echo(f"subject: {composed.subject}")
    click.echo(f"stories: {len(composed.story_ids)} ({composed.shortened} shortened, "
               f"{composed.omitted} left for the archive)")  # fmt: skip
    click.echo(f"html: {composed.html_bytes:,} bytes (Gmail clips at {GMAIL_CLIP:,}) -> {out}")
    click.echo(f"text: {composed.text_bytes:,} bytes -> {text_out}")


TERMINAL = ("sent", "cancelled")


PROGRESS_SECONDS = 2.0


def _pick_digest(session: Any, list_slug: str, digest_id: int | None) -> Any:
    """The given digest, else the list's newest draft, else a freshly composed one."""
    from newsletter.digests.compose import compose_digest
    from newsletter.models import Digest, DigestStatus
    from newsletter.subscriptions.lists import find_list

    mlist = find_list(session, list_slug)
    if digest_id is not None:
        found = session.get(Digest, digest_id)
        if found is None or found.list_id != mlist.id:
            raise InputError(f"there is no digest {digest_id} of list {list_slug}")
        return found
    found = session.scalar(
        select(Digest)
        .where(Digest.list_id == mlist.id, Digest.status == DigestStatus.draft)
        .order_by(Digest.id.desc())
        .limit(1)
    )
    if found is None:
        found = compose_digest(session, settings(), mlist)
    if found is None:
        raise InputError(f"{list_slug}: no new stories since the previous digest; nothing to send")
    return found


def _wait(digest_id: int, as_json: bool) -> dict[str, Any]:
    """Poll the ledger; a progress bar with rate and ETA on a terminal, and without one
    (cron, CI, a log file) a plain progress line on stderr when the counts change, at
    most every PROGRESS_SECONDS."""
    from tqdm import tqdm

    st = status_of(digest_id)
    bar = None
    lines = not as_json and not sys.stderr.isatty()
    if not as_json and not lines:
        bar = tqdm(total=st["total"], unit="msg", desc=f"send {digest_id}", file=sys.stderr)
    done_before = 0
    last_line, last_at = "", -PROGRESS_SECONDS
    try:
        while True:
            done = st["sent"] + st["bounced"] + st["failed"]
            if bar is not None:
                if bar.total != st["total"]:  # the ledger of a large list grows at first
                    bar.total = st["total"]
                bar.update(done - done_before)
                bar.set_postfix(deferred=st["deferred"], bounced=st["bounced"])
            elif lines:
                line = (
                    f"send {digest_id}: {done}/{st['total']} done  sent {st['sent']}  "
                    f"deferred {st['deferred']}  bounced {st['bounced']}  failed {st['failed']}"
                )
                if line != last_line and time.monotonic() - last_at >= PROGRESS_SECONDS:
                    click.echo(line, err=True)
                    last_line, last_at = line, time.monotonic()
            done_before = done
            if st["status"] in TERMINAL:
                return st
            if (
                st["status"] == "paused"
                and st.get("pause_reason")
                and "SMTP" not in (st["pause_reason"] or "")
            ):
                return st  # an operator or the bounce guard paused it: nothing to wait for
            time.sleep(0.5)
            st = status_of(digest_id)
    finally:
        if bar is not None:
            bar.close()


@digest.command("send")
@click.option("--list", "list_slug", required=True)
@click.option("--digest", "digest_id", type=int, default=None, help="Default: newest draft.")
@click.option("--wait", is_flag=True, help="Stay until the send ends, with a progress bar.")
@click.option("--json", "as_json", is_flag=True)
@handled
def digest_send(list_slug: str, digest_id: int | None, wait: bool, as_json: bool) -> None:
    """Send a digest to every confirmed subscriber of the list."""
    from newsletter.db import session_scope
    from newsletter.sending.job import start_send

    with session_scope() as session:
        found = _pick_digest(session, list_slug, digest_id)
        ranges = start_send(session, settings(), found)
        digest_id = found.id
    assert digest_id is not None
    enqueue(digest_id, ranges)
    st = _wait(digest_id, as_json) if wait else status_of(digest_id)
    if as_json:
        emit_json(st)
    else:
        print_status(st)
    if wait and st["status"] == "paused":
        sys.exit(1)


@digest.command("test")
@click.option("--list", "list_slug", required=True)
@click.option("--to", "to", required=True, help="Address to send the test to.")
@click.option("--digest", "digest_id", type=int, default=None)
@handled
def digest_test(list_slug: str, to: str, digest_id: int | None) -> None:
    """Send the digest once to one address, outside the ledger."""
    from newsletter.db import session_scope
    from newsletter.mail.dkim import keys_from_settings
    from newsletter.mail.fastpath import DigestTemplate, Recipient
    from newsletter.mail.smtp import SmtpTransport
    from newsletter.models import MailingList
    from newsletter.subscriptions.addresses import normalise_email

    email = normalise_email(to)
    s = settings()
    with session_scope() as session:
        found = _pick_digest(session, list_slug, digest_id)
        mlist = session.get(MailingList, found.list_id)
        template = DigestTemplate(
            settings=s,
            digest_id=found.id,
            list_slug=mlist.slug,
            list_name=mlist.name,
            subject=f"[TEST] {found.subject}",
            text=found.text,
            html=found.html,
            dkim_keys=keys_from_settings(s),
        )
    from email.utils import make_msgid

    raw = template.render(Recipient(0, email, "", 0), message_id=make_msgid(domain=s.sender_domain))
    transport = SmtpTransport(s.smtp)
    try:
        transport.send(raw, template.envelope_sender(0), [email])
    except Exception as exc:  # noqa: BLE001 - any SMTP or socket failure is one line
        raise ServiceError(f"SMTP: {exc.__class__.__name__}: {exc}") from None
    finally:
        transport.close()
    click.echo(f"test of digest {found.id} sent to {email}")
