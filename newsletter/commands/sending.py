"""`newsletter digest test|send` and `newsletter sends …`: start, watch and steer sends.

The domain work is in newsletter/sending/; these commands pick the digest, enqueue the
batches the domain returns, and print. `--json` prints the same object as the admin API.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from sqlalchemy import select

from newsletter.commands.common import InputError, ServiceError, emit_json, handled, settings
from newsletter.commands.content import digest

TERMINAL = ("sent", "cancelled")
PROGRESS_SECONDS = 2.0


def _enqueue(digest_id: int, ranges: list[tuple[int, int]]) -> None:
    from workers.tasks import enqueue_ranges

    try:
        enqueue_ranges(digest_id, ranges)
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; one line for the operator
        raise ServiceError(f"broker unreachable: {exc.__class__.__name__}: {exc}") from None


def _pick_digest(session: Any, list_slug: str, digest_id: int | None) -> Any:
    """The given digest, else the list's newest draft, else a freshly composed one."""
    from newsletter.composer import compose_digest
    from newsletter.models import Digest, DigestStatus
    from newsletter.subscriptions import find_list

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


def _status(digest_id: int) -> dict[str, Any]:
    from newsletter.db import session_scope
    from newsletter.sending.control import get_digest, send_status

    with session_scope() as session:
        return send_status(session, get_digest(session, digest_id))


def _print_status(st: dict[str, Any]) -> None:
    click.echo(
        f"send {st['id']} ({st['list']}): {st['status']}  total {st['total']}  "
        f"queued {st['queued']}  sent {st['sent']}  deferred {st['deferred']}  "
        f"bounced {st['bounced']}  failed {st['failed']}  rate {st['rate']}/s"
    )
    if st.get("pause_reason"):
        click.echo(f"  paused: {st['pause_reason']}")


def _wait(digest_id: int, as_json: bool) -> dict[str, Any]:
    """Poll the ledger; a progress bar with rate and ETA on a terminal, and without one
    (cron, CI, a log file) a plain progress line on stderr when the counts change, at
    most every PROGRESS_SECONDS."""
    from tqdm import tqdm

    st = _status(digest_id)
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
            st = _status(digest_id)
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
    _enqueue(digest_id, ranges)
    st = _wait(digest_id, as_json) if wait else _status(digest_id)
    if as_json:
        emit_json(st)
    else:
        _print_status(st)
    if wait and st["status"] == "paused":
        sys.exit(1)


@digest.command("test")
@click.option("--list", "list_slug", required=True)
@click.option("--to", "to", required=True, help="Address to send the test to.")
@click.option("--digest", "digest_id", type=int, default=None)
@handled
def digest_test(list_slug: str, to: str, digest_id: int | None) -> None:
    """Send the digest once to one address, outside the ledger."""
    from newsletter.addresses import normalise_email
    from newsletter.db import session_scope
    from newsletter.mail.dkim import keys_from_settings
    from newsletter.mail.fastpath import DigestTemplate, Recipient
    from newsletter.mail.smtp import SmtpTransport
    from newsletter.models import MailingList

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


@click.group()
def sends() -> None:
    """Sends: list, status, pause, resume, cancel, retry."""


@sends.command("list")
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_list(as_json: bool) -> None:
    from newsletter.db import session_scope
    from newsletter.sending.control import list_sends

    with session_scope() as session:
        rows = list_sends(session)
    if as_json:
        emit_json(rows)
        return
    for st in rows:
        _print_status(st)


@sends.command("status")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_status(send_id: int, as_json: bool) -> None:
    st = _status(send_id)
    emit_json(st) if as_json else _print_status(st)


def _control(send_id: int, as_json: bool, action: str) -> None:
    from newsletter.db import session_scope
    from newsletter.sending import control

    with session_scope() as session:
        if action == "pause":
            control.operator_pause(session, send_id)
            ranges: list[tuple[int, int]] = []
        elif action == "resume":
            ranges = control.operator_resume(session, settings(), send_id)
        elif action == "cancel":
            control.cancel(session, send_id)
            ranges = []
        else:
            ranges = control.retry_failed(session, settings(), send_id)
    _enqueue(send_id, ranges)
    st = _status(send_id)
    emit_json(st) if as_json else _print_status(st)


@sends.command("pause")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_pause(send_id: int, as_json: bool) -> None:
    _control(send_id, as_json, "pause")


@sends.command("resume")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_resume(send_id: int, as_json: bool) -> None:
    _control(send_id, as_json, "resume")


@sends.command("cancel")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_cancel(send_id: int, as_json: bool) -> None:
    _control(send_id, as_json, "cancel")


@sends.command("retry")
@click.argument("send_id", type=int)
@click.option("--failed", "failed", is_flag=True, required=True, help="Re-send the failed ones.")
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_retry(send_id: int, failed: bool, as_json: bool) -> None:
    if not failed:
        raise InputError("say which deliveries to retry: --failed")
    _control(send_id, as_json, "retry")
