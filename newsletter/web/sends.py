"""Admin API for sends: the same counts and controls as `newsletter sends …`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.errors import InvalidInput, NotFound
from newsletter.sending import control
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api/sends", dependencies=[Depends(require_admin)])


class SendIn(BaseModel):
    list: str
    digest_id: int | None = None


def _bad(exc: InvalidInput) -> HTTPException:
    status = 404 if isinstance(exc, NotFound) else 409
    return HTTPException(status, [{"field": exc.field, "message": exc.message}])


def _enqueue(digest_id: int, ranges: list[tuple[int, int]]) -> None:
    from workers.tasks import enqueue_ranges

    enqueue_ranges(digest_id, ranges)


def _status(digest_id: int) -> dict[str, Any]:
    with session_scope() as session:
        return control.send_status(session, control.get_digest(session, digest_id))


@router.get("")
def get_sends() -> list[dict[str, Any]]:
    with session_scope() as session:
        return control.list_sends(session)


@router.post("", status_code=201)
def post_send(body: SendIn) -> dict[str, Any]:
    from sqlalchemy import select

    from newsletter.digests.compose import compose_digest
    from newsletter.models import Digest, DigestStatus
    from newsletter.sending.job import start_send
    from newsletter.subscriptions.lists import find_list

    settings = get_settings()
    try:
        with session_scope() as session:
            mlist = find_list(session, body.list)
            query = select(Digest).where(Digest.list_id == mlist.id)
            if body.digest_id is not None:
                query = query.where(Digest.id == body.digest_id)
            else:
                query = query.where(Digest.status == DigestStatus.draft)
            digest = session.scalar(query.order_by(Digest.id.desc()).limit(1))
            if digest is None and body.digest_id is None:
                digest = compose_digest(session, settings, mlist)
            if digest is None:
                raise HTTPException(409, "no digest to send: no new stories")
            ranges = start_send(session, settings, digest)
            digest_id = digest.id
    except InvalidInput as exc:
        raise _bad(exc) from None
    _enqueue(digest_id, ranges)
    return _status(digest_id)


@router.get("/{send_id}")
def get_send(send_id: int) -> dict[str, Any]:
    try:
        return _status(send_id)
    except InvalidInput as exc:
        raise _bad(exc) from None


@router.post("/{send_id}/{action}")
def post_action(send_id: int, action: str) -> dict[str, Any]:
    if action not in ("pause", "resume", "cancel", "retry"):
        raise HTTPException(404, f"no action {action!r}; use pause, resume, cancel or retry")
    settings = get_settings()
    ranges: list[tuple[int, int]] = []
    try:
        with session_scope() as session:
            if action == "pause":
                control.operator_pause(session, send_id)
            elif action == "resume":
                ranges = control.operator_resume(session, settings, send_id)
            elif action == "cancel":
                control.cancel(session, send_id)
            else:
                ranges = control.retry_failed(session, settings, send_id)
    except InvalidInput as exc:
        raise _bad(exc) from None
    _enqueue(send_id, ranges)
    return _status(send_id)
