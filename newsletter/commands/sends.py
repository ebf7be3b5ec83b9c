"""`newsletter sends …`: watch and steer sends; `--json` prints the same object as the admin API."""

from __future__ import annotations

from typing import Any

import click

from newsletter.commands.common import InputError, ServiceError, emit_json, handled, settings


def enqueue(digest_id: int, ranges: list[tuple[int, int]]) -> None:
    from workers.tasks import enqueue_ranges

    try:
        enqueue_ranges(digest_id, ranges)
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; one line for the operator
        raise ServiceError(f"broker unreachable: {exc.__class__.__name__}: {exc}") from None


def status_of(digest_id: int) -> dict[str, Any]:
    from newsletter.db import session_scope
    from newsletter.sending.control import get_digest, send_status

    with session_scope() as session:
        return send_status(session, get_digest(session, digest_id))


def print_status(st: dict[str, Any]) -> None:
    click.echo(
        f"send {st['id']} ({st['list']}): {st['status']}  total {st['total']}  "
        f"queued {st['queued']}  sent {st['sent']}  deferred {st['deferred']}  "
        f"bounced {st['bounced']}  failed {st['failed']}  rate {st['rate']}/s"
    )
    if st.get("pause_reason"):
        click.echo(f"  paused: {st['pause_reason']}")


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
        print_status(st)


@sends.command("status")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@handled
def sends_status(send_id: int, as_json: bool) -> None:
    st = status_of(send_id)
    emit_json(st) if as_json else print_status(st)


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
    enqueue(send_id, ranges)
    st = status_of(send_id)
    emit_json(st) if as_json else print_status(st)


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
