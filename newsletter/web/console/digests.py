"""/console/digests: compose a list's draft, choose and order its stories, preview it as
readers get it, test-send it to oneself, send it now or at a chosen time.

The preview is the text/html part of the very message a reader gets (digests/preview.py
preview_message, decoded from the message's bytes), served alone at
/console/digests/{id}/preview.html under a CSP that runs nothing and shown in two
sandboxed iframes, desktop and phone width. Sending runs the preflight first, as the
API does: a blocking finding refuses the send unless a sender chooses "send anyway".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.accounts.roles import Capability
from newsletter.accounts.sessions import Current
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.digests import actions as digests
from newsletter.digests import editing
from newsletter.digests.compose import MAX_SELECTED
from newsletter.digests.preview import preview_message
from newsletter.digests.render import GMAIL_CLIP
from newsletter.errors import NotFound
from newsletter.models import Digest, DigestStatus, MailingList, Story
from newsletter.preflight import actions as preflights
from newsletter.preflight import message_checks
from newsletter.preflight.findings import Report
from newsletter.sending import actions as sends
from newsletter.web.console.core import ActionFailed, SignedIn, act, redirect, render, requires

router = APIRouter()
PAGE = 50
MAX_ID = 2**31 - 1
Arranger = Annotated[Current, requires(Capability.digests)]
Tester = Annotated[Current, requires(Capability.test_send)]
Sender = Annotated[Current, requires(Capability.send)]
# The preview runs nothing and reaches nothing but images: its own CSP, sandboxed.
PREVIEW_CSP = (
    "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)


@router.get("/digests", response_class=HTMLResponse)
def digests_page(
    request: Request,
    current: SignedIn,
    list_slug: Annotated[str, Query(alias="list", max_length=64)] = "",
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> HTMLResponse:
    """Newest first, PAGE at a time (keyset on id), with the compose form."""
    with session_scope() as session:
        lists = session.execute(
            select(MailingList.id, MailingList.slug, MailingList.name).order_by(MailingList.slug)
        ).all()[:500]
        slugs = {i: slug for i, slug, _ in lists}
        query = select(Digest).order_by(Digest.id.desc()).limit(PAGE + 1)
        if list_slug:
            wanted = [i for i, slug, _ in lists if slug == list_slug]
            if not wanted:
                raise ActionFailed(404, f"There is no newsletter called {list_slug!r}.")
            query = query.where(Digest.list_id == wanted[0])
        if after:
            query = query.where(Digest.id < after)
        found = list(session.scalars(query))
        rows = [
            {
                "id": d.id,
                "list": slugs.get(d.list_id),
                "subject": d.subject,
                "status": d.status,
                "created": d.created_at,
                "send_at": d.send_at,
            }
            for d in found[:PAGE]
        ]
    return render(
        request,
        "digests.html",
        digests=rows,
        lists=[(slug, name) for _, slug, name in lists],
        list_slug=list_slug,
        next_after=rows[-1]["id"] if len(found) > PAGE else None,
    )


def _newest_draft(session: Session, list_slug: str) -> int | None:
    return session.scalar(
        select(Digest.id)
        .join(MailingList, MailingList.id == Digest.list_id)
        .where(MailingList.slug == list_slug, Digest.status == DigestStatus.draft)
        .order_by(Digest.id.desc())
        .limit(1)
    )


@router.post("/digests/compose")
def compose(
    current: Arranger, list_slug: Annotated[str, Form(alias="list", max_length=64)] = ""
) -> Response:
    """The draft a send would pick (the list's newest), else a new one of its new stories."""
    with session_scope() as session:
        draft = _newest_draft(session, list_slug)
    if draft is not None:
        return redirect(f"/console/digests/{draft}", "This is the list's draft; arrange it here.")
    done = act(digests.compose, list_slug)
    return redirect(f"/console/digests/{done['id']}", "Composed a draft of the new stories.")


def _digest(session: Session, digest_id: int) -> tuple[Digest, MailingList]:
    try:
        digest = editing.draft_of(session, digest_id)
    except NotFound as exc:
        raise ActionFailed(404, exc.message) from None
    mlist = session.get(MailingList, digest.list_id)
    assert mlist is not None
    return digest, mlist


def _local(moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _detail(session: Session, digest_id: int) -> dict[str, Any]:
    """What the digest page shows; the size is measured on the reader's message."""
    settings = get_settings()
    digest, mlist = _digest(session, digest_id)
    preview = preview_message(settings, mlist, digest, dkim_keys=())
    size = message_checks.size(preview)
    chosen = set(digest.story_ids or [])
    offered = editing.candidates(session, digest) if digest.status == DigestStatus.draft else []
    carried = sum(len(link.get("story_ids", [])) for link in digest.carry or [])
    ids = list(digest.story_ids or [])[:MAX_SELECTED]
    titles = dict(session.execute(select(Story.id, Story.title).where(Story.id.in_(ids))).all())
    return {
        "digest": {
            "id": digest.id,
            "subject": digest.subject,
            "status": digest.status,
            "list": mlist.slug,
            "list_name": mlist.name,
            "timezone": mlist.timezone,
            "created": _local(digest.created_at, mlist.timezone),
            "send_at": _local(digest.send_at, mlist.timezone),
            "requested_by": digest.requested_by,
            "reason": digest.pause_reason,
            "stories": len(chosen),
            "carried": carried,
            "track_clicks": mlist.track_clicks,  # the send page shows clicks per story
        },
        "stories": [
            {"id": s.id, "title": s.title, "section": s.section, "chosen": s.id in chosen}
            for s in offered
        ],
        "chosen": [titles[i] for i in ids if i in titles],  # in the digest's order
        "size": {
            "html": preview.html_bytes,
            "clip": GMAIL_CLIP,
            "percent": round(100 * preview.html_bytes / GMAIL_CLIP),
            "ok": size.ok,
            "detail": size.detail,
            "message": preview.message_bytes,
        },
        "approval": settings.send_approval,
        "now_local": datetime.now(ZoneInfo(mlist.timezone)).strftime("%Y-%m-%dT%H:%M"),
    }


def _page(
    request: Request,
    digest_id: int,
    status: int = 200,
    report: Report | None = None,
    intent: dict[str, str] | None = None,
) -> HTMLResponse:
    with session_scope() as session:
        context = _detail(session, digest_id)
    return render(
        request, "digest.html", status=status, report=report, intent=intent or {}, **context
    )


@router.get("/digests/{digest_id}", response_class=HTMLResponse)
def digest_page(request: Request, current: SignedIn, digest_id: int) -> HTMLResponse:
    return _page(request, digest_id)


@router.get("/digests/{digest_id}/preview.html")
def preview_html(current: SignedIn, digest_id: int) -> Response:
    """The HTML part of the message a sample reader gets, as the reader's client sees it."""
    with session_scope() as session:
        digest, mlist = _digest(session, digest_id)
        html = preview_message(get_settings(), mlist, digest, dkim_keys=()).html
    return Response(
        html,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": PREVIEW_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


@router.post("/digests/{digest_id}/arrange")
def arrange(
    current: Arranger,
    digest_id: int,
    order: Annotated[list[int], Form()],
    include: Annotated[list[int] | None, Form()] = None,
    move: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """One form: the stories ticked, in the order shown, one moved up or down if a
    ▲/▼ button sent it (buttons of the same form, so it works without JavaScript)."""
    ticked = set(include or [])
    sequence = list(order)[:MAX_SELECTED]
    if move:
        direction, _, raw_id = move.partition(":")
        if direction not in ("up", "down") or not raw_id.isdigit():
            raise ActionFailed(422, "Unknown move.")
        sequence = editing.moved(sequence, int(raw_id), -1 if direction == "up" else 1)
    act(editing.arrange, digest_id, [i for i in sequence if i in ticked])
    back = redirect(f"/console/digests/{digest_id}", "Draft rendered again.")
    back.headers["location"] += "#stories"  # the stories stay in view after a move
    return back


@router.post("/digests/{digest_id}/test")
def test_send(current: Tester, digest_id: int) -> Response:
    """The digest once to the logged-in person's own address, with [TEST] in the subject."""
    with session_scope() as session:
        _, mlist = _digest(session, digest_id)
        slug = mlist.slug
    done = act(sends.test_send, slug, current.actor.name, digest_id)
    return redirect(f"/console/digests/{digest_id}", f"Test sent to {done['to']}.")


def _preflight_or_page(
    request: Request, slug: str, digest_id: int, anyway: bool, intent: dict[str, str]
) -> HTMLResponse | None:
    """The preflight's refusal as the page (409), or None when the send may go."""
    report = act(preflights.preflight, slug, digest_id)
    if report.blocked and not anyway:
        return _page(request, digest_id, 409, report, intent)
    return None


@router.post("/digests/{digest_id}/send")
def send_now(
    request: Request,
    current: Sender,
    digest_id: int,
    anyway: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    with session_scope() as session:
        _, mlist = _digest(session, digest_id)
        slug = mlist.slug
    refused = _preflight_or_page(request, slug, digest_id, bool(anyway), {"kind": "send"})
    if refused is not None:
        return refused
    done = act(sends.send, slug, digest_id)
    if done["status"] == DigestStatus.awaiting_approval:
        message = "Send requested: it waits for another sender or admin to approve it."
    else:
        message = "Sending started."
    return redirect(f"/console/digests/{digest_id}", message)


@router.post("/digests/{digest_id}/schedule")
def schedule(
    request: Request,
    current: Sender,
    digest_id: int,
    send_at: Annotated[str, Form(max_length=40)] = "",
    anyway: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """At a time in the list's time zone (a datetime-local field); beat starts it."""
    with session_scope() as session:
        _, mlist = _digest(session, digest_id)
        slug = mlist.slug
    intent = {"kind": "schedule", "send_at": send_at}
    refused = _preflight_or_page(request, slug, digest_id, bool(anyway), intent)
    if refused is not None:
        return refused
    act(sends.schedule, slug, digest_id, send_at)
    return redirect(f"/console/digests/{digest_id}", "Scheduled.")


@router.post("/digests/{digest_id}/unschedule")
def unschedule(current: Sender, digest_id: int) -> Response:
    act(sends.unschedule, digest_id)
    return redirect(f"/console/digests/{digest_id}", "Schedule cancelled: it is a draft again.")
