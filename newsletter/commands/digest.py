"""`newsletter digest …`: compose, preview, preflight, test, send and list digests.

Each command parses, calls one action (newsletter/digests/actions.py,
newsletter/sending/actions.py) through the gateway and prints; `--json` prints what the
admin API answers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from newsletter.commands.common import InputError, ServiceError, emit_json, handled, perform
from newsletter.commands.sends import print_status, status_of
from newsletter.digests import actions as digests
from newsletter.digests.render import GMAIL_CLIP
from newsletter.preflight import actions as preflights
from newsletter.preflight.findings import Report
from newsletter.sending import actions as sending

TERMINAL = ("sent", "cancelled")
PROGRESS_SECONDS = 2.0


@click.group()
def digest() -> None:
    """Digests: compose, preview, preflight, test, send, list."""


@digest.command("preview")
@click.option("--list", "list_slug", required=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="HTML file to write (default: <list>-preview.html); the text goes beside it as .txt.",
)
@click.option("--json", "as_json", is_flag=True)
@handled
def digest_preview(list_slug: str, out: Path | None, as_json: bool) -> None:
    """Render the next digest without storing it; it uses no stories up."""
    preview = perform(digests.preview, list_slug)
    if preview is None:
        if as_json:
            emit_json({"list": list_slug, "stories": 0})
        else:
            click.echo(
                f"{list_slug}: no new stories since the previous digest; no digest to preview"
            )
        return
    out = out or Path(f"{list_slug}-preview.html")
    text_out = out.with_suffix(".txt")
    try:
        out.write_text(preview.html, encoding="utf-8")
        text_out.write_text(preview.text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror})") from None
    record = preview.record()
    if as_json:
        emit_json({**record, "html_file": str(out), "text_file": str(text_out)})
        return
    click.echo(f"subject: {record['subject']}")
    click.echo(f"stories: {record['stories']} ({record['shortened']} shortened, "
               f"{record['omitted']} left for the archive)")  # fmt: skip
    click.echo(f"html: {record['html_bytes']:,} bytes (Gmail clips at {GMAIL_CLIP:,}) -> {out}")
    click.echo(f"text: {record['text_bytes']:,} bytes -> {text_out}")


@digest.command("compose")
@click.option("--list", "list_slug", required=True)
@click.option("--json", "as_json", is_flag=True)
@handled
def digest_compose(list_slug: str, as_json: bool) -> None:
    """Compose a draft of the list's next digest from its new stories."""
    record = perform(digests.compose, list_slug)
    if as_json:
        emit_json(record)
    else:
        click.echo(f"digest {record['id']} ({record['status']}): {record['subject']}")


@digest.command("list")
@click.option("--list", "list_slug", default=None)
@click.option("--json", "as_json", is_flag=True)
@handled
def digest_list(list_slug: str | None, as_json: bool) -> None:
    """Digests newest first: drafts and sends with their status."""
    rows = perform(digests.list_digests, list_slug)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['id']}\t{r['list']}\t{r['status']}\t{r['subject']}")


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


SEVERITY_LABEL = {"ok": "ok", "warning": "warning", "blocking": "BLOCKING"}


def print_report(report: Report, *, err: bool = False) -> None:
    counts = f"{sum(f.severity == 'blocking' for f in report.findings)} blocking, " \
        f"{report.warnings} warning(s)"  # fmt: skip
    click.echo(f"preflight of {report.list}: {counts}", err=err)
    width = max((len(f.check) for f in report.findings), default=0)
    for f in report.findings:
        label = SEVERITY_LABEL[f.severity]
        click.echo(f"  {label:<8} {f.check:<{width}}  {f.detail}", err=err)


@digest.command("preflight")
@click.option("--list", "list_slug", required=True)
@click.option("--digest", "digest_id", type=int, default=None, help="Default: newest draft.")
@click.option("--json", "as_json", is_flag=True)
@handled
def digest_preflight(list_slug: str, digest_id: int | None, as_json: bool) -> None:
    """Check the next send before it leaves: SPF, DKIM and DMARC in DNS, List-Unsubscribe
    end to end, a visible unsubscribe link, the size against Gmail's clip, every link and
    the SpamAssassin score. Exits 1 when a finding blocks a send, 0 otherwise."""
    report = perform(preflights.preflight, list_slug, digest_id)
    if as_json:
        emit_json(report.record())
    else:
        print_report(report)
    if report.blocked:
        sys.exit(1)


@digest.command("send")
@click.option("--list", "list_slug", required=True)
@click.option("--digest", "digest_id", type=int, default=None, help="Default: newest draft.")
@click.option(
    "--segment",
    "segment",
    default=None,
    help="Only the list's readers in this segment (`newsletter segments list`).",
)
@click.option(
    "--at",
    "send_at",
    default=None,
    help="Send later: ISO 8601 date and time (without an offset: the list's time zone); "
    "`newsletter sends unschedule ID` calls it off.",
)
@click.option("--wait", is_flag=True, help="Stay until the send ends, with a progress bar.")
@click.option(
    "--skip-preflight",
    is_flag=True,
    help="Send even when the preflight (`digest preflight`) finds something that blocks.",
)
@click.option("--json", "as_json", is_flag=True)
@handled
def digest_send(
    list_slug: str,
    digest_id: int | None,
    segment: str | None,
    send_at: str | None,
    wait: bool,
    skip_preflight: bool,
    as_json: bool,
) -> None:
    """Send a digest to every confirmed subscriber of the list (or of one segment of it
    with --segment), now or at a time (--at).

    The preflight runs first: when a finding blocks, nothing is sent, the findings are
    shown and the command exits 1; fix them, or pass --skip-preflight to send anyway.
    """
    if send_at is not None and wait:
        raise InputError("--wait and --at do not go together: a send at a time starts later")
    if not skip_preflight:
        report = perform(preflights.preflight, list_slug, digest_id)
        if report.blocked:
            if as_json:
                emit_json(report.record())
            else:
                print_report(report, err=True)
            raise ServiceError(
                "the preflight found something that blocks the send; nothing was sent: fix "
                "it, or send anyway with --skip-preflight"
            )
        if report.warnings and sys.stderr.isatty() and not as_json:
            click.echo(
                f"preflight: {report.warnings} warning(s); "
                f"`newsletter digest preflight --list {list_slug}` shows them",
                err=True,
            )
    if send_at is not None:
        st = perform(sending.schedule, list_slug, digest_id, send_at, segment)
        if as_json:
            emit_json(st)
        else:
            click.echo(f"send {st['id']} scheduled for {st.get('send_at') or send_at}")
        return
    st = perform(sending.send, list_slug, digest_id, segment)
    if wait:
        st = _wait(st["id"], as_json)
    else:
        st = status_of(st["id"])
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
@click.option("--json", "as_json", is_flag=True)
@handled
def digest_test(list_slug: str, to: str, digest_id: int | None, as_json: bool) -> None:
    """Send the digest once to one address, outside the ledger."""
    record = perform(sending.test_send, list_slug, to, digest_id)
    if as_json:
        emit_json(record)
    else:
        click.echo(f"test of digest {record['digest']} sent to {record['to']}")
