"""Content routes: story pages, the digest archive, and the admin API for both.

Story text is data: every field reaches HTML through Jinja's autoescape, so a story
holding "<script>" shows those characters and runs nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.digests.archive import archived_digest, archived_digests, digest_record
from newsletter.digests.compose import compose_digest
from newsletter.errors import InvalidInput
from newsletter.stories.drafts import MAX_BYTES
from newsletter.stories.parse import parse_story_bytes
from newsletter.stories.store import (
    find_list_or_none,
    get_story,
    store_stories,
    story_paragraphs,
    story_record,
    story_records,
)
from newsletter.subscriptions.lists import find_list
from newsletter.web.auth import require_admin
from newsletter.web.pages import page

router = APIRouter()
admin = [Depends(require_admin)]

CONTENT_TYPES = {
    "application/json": "json",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
}


def _bad(exc: InvalidInput) -> HTTPException:
    return HTTPException(422, [{"field": exc.field, "message": exc.message}])


# Reader pages ------------------------------------------------------------------------------


@router.get("/stories/{slug}", response_class=HTMLResponse)
def story_page(request: Request, slug: str) -> HTMLResponse:
    with session_scope() as session:
        story = get_story(session, slug)
        if story is None:
            raise HTTPException(404, "There is no story at this address.")
        return page(request, "story.html", story=story, paragraphs=story_paragraphs(story))


@router.get("/archive", response_class=HTMLResponse)
def archive(request: Request) -> HTMLResponse:
    with session_scope() as session:
        digests = archived_digests(session)
        return page(request, "archive.html", digests=digests)


@router.get("/archive/{digest_id}", response_class=HTMLResponse)
def archive_digest(request: Request, digest_id: int) -> HTMLResponse:
    with session_scope() as session:
        found = archived_digest(session, digest_id)
        if found is None:
            raise HTTPException(404, "There is no sent digest with this number.")
        digest, stories = found
        entries = [(s, story_paragraphs(s)[:1]) for s in stories]
        return page(request, "archive_digest.html", digest=digest, entries=entries)


# Admin API --------------------------------------------------------------------------------------


class DigestIn(BaseModel):
    list: str
    period_key: str | None = None


@router.post("/api/stories", dependencies=admin, status_code=201)
async def post_stories(request: Request, list: str | None = None) -> JSONResponse:  # noqa: A002
    """A story as JSON (object or array), Markdown with front matter, or plain text."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_BYTES:
        raise HTTPException(413, f"A story body may be at most {MAX_BYTES // 2**20} MB.")
    data = await request.body()
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = CONTENT_TYPES.get(mime)
    settings = get_settings()
    try:
        drafts = parse_story_bytes(data, "request body", fmt)
        with session_scope() as session:
            mailing_list = find_list_or_none(session, list)
            report = store_stories(session, drafts, mailing_list)
            added = [story_record(s, settings.base_url, list) for s in report.added]
    except InvalidInput as exc:
        raise _bad(exc) from None
    body = {"added": added, "skipped": len(report.skipped)}
    return JSONResponse(body, status_code=201 if added else 200)


@router.get("/api/stories", dependencies=admin)
def get_stories(list: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
    try:
        with session_scope() as session:
            return story_records(session, get_settings().base_url, list)
    except InvalidInput as exc:
        raise _bad(exc) from None


@router.post("/api/digests", dependencies=admin, status_code=201)
def post_digest(body: DigestIn) -> dict[str, Any]:
    """Compose a draft of the list's next digest; 409 when it has no new stories."""
    settings = get_settings()
    try:
        with session_scope() as session:
            mailing_list = find_list(session, body.list)
            digest = compose_digest(session, settings, mailing_list, period_key=body.period_key)
            if digest is None:
                raise HTTPException(
                    409, f"List {body.list!r} has no new stories since its previous digest."
                )
            return digest_record(digest, settings.base_url)
    except InvalidInput as exc:
        raise _bad(exc) from None
