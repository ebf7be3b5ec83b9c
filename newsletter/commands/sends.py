"""`newsletter sends …`: watch and steer sends; `--json` prints the same object as the admin API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from newsletter.commands.common import InputError, emit_json, handled, perform
from newsletter.effects import Done
from newsletter.sending import actions


def status_of(digest_id: int) -> dict[str, Any]:
    return perform(actions.status, digest_id)


def print_status(st: dict[str, Any]) -> None:
    click.echo(
        f"send {st['id']} ({st['list']}): {st['status']}  total {st['total']}  "
        f"queued {st['queued']}  sent {st['sent']}  deferred {st['deferred']}  "
        f"bounced {st['bounced']}  failed {st['failed']}  rate {st['rate']}/s"
    )
    if st.get("pause_reason"):
        click.echo(f"  paused: {st['pause_reason']}")


def show(st: dict[str, Any], as_json: bool) -> None:
    emit_json(st) if as_json else print_status(st)


@click.group()
def sends() -> None:
    """Sends: list, status, pause, resume, cancel, retry, approve, reject."""


@sends.command("list")
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_list(as_json: bool) -> None:
    rows = perform(actions.list_sends)
    if as_json:
        emit_json(rows)
        return
    for st in rows:
        print_status(st)


@sends.command("status")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_status(send_id: int, as_json: bool) -> None:
    show(status_of(send_id), as_json)


def _steer(action: Callable[..., Done[dict[str, Any]]], send_id: int, as_json: bool) -> None:
    show(perform(action, send_id), as_json)


@sends.command("pause")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_pause(send_id: int, as_json: bool) -> None:
    _steer(actions.pause, send_id, as_json)


@sends.command("resume")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_resume(send_id: int, as_json: bool) -> None:
    _steer(actions.resume, send_id, as_json)


@sends.command("cancel")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_cancel(send_id: int, as_json: bool) -> None:
    _steer(actions.cancel, send_id, as_json)


@sends.command("retry")
@click.argument("send_id", type=int)
@click.option("--failed", "failed", is_flag=True, required=True, help="Re-send the failed ones.")
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_retry(send_id: int, failed: bool, as_json: bool) -> None:
    if not failed:
        raise InputError("say which deliveries to retry: --failed")
    _steer(actions.retry_failed, send_id, as_json)


@sends.command("approve")
@click.argument("send_id", type=int)
@click.option("--by", "by", required=True, help="The approving user's e-mail (a sender or admin).")
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_approve(send_id: int, by: str, as_json: bool) -> None:
    """Approve a send awaiting approval (NEWSLETTER_SEND_APPROVAL); it starts at once."""
    show(perform(actions.approve, send_id, by), as_json)


@sends.command("reject")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_reject(send_id: int, as_json: bool) -> None:
    """Refuse a send awaiting approval: its digest goes back to draft."""
    _steer(actions.reject, send_id, as_json)


@sends.command("unschedule")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_unschedule(send_id: int, as_json: bool) -> None:
    """Call off a send scheduled for a time (`digest send --at`): its digest is a draft
    again."""
    _steer(actions.unschedule, send_id, as_json)
