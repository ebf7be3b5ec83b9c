"""Content routes: story pages, the digest archive, and the admin API for both.

Story text is data: every field reaches HTML through Jinja's autoescape, so a story
holding "<script>" shows those characters and runs nothing.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool

from newsletter.db import session_scope
from newsletter.digests import actions as digests
from newsletter.digests.archive import archived_digest, archived_digests
from newsletter.sending import actions as sending
from newsletter.stories import actions as stories
from newsletter.stories.drafts import MAX_BYTES
from newsletter.stories.fetch import URL_PATTERN
from newsletter.stories.store import (
    get_story,
    reading_paragraphs,
    story_paragraphs,
)
from newsletter.subscriptions.lists import SLUG
from newsletter.web.api import MAX_ID, call
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


# Reader pages ------------------------------------------------------------------------------


@router.get("/stories/{slug}", response_class=HTMLResponse)
def story_page(request: Request, slug: Annotated[str, Path(max_length=120)]) -> HTMLResponse:
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
        # A number past any id is simply not there: the reader gets the 404 page.
        found = archived_digest(session, digest_id) if 1 <= digest_id <= MAX_ID else None
        if found is None:
            raise HTTPException(404, "There is no sent digest with this number.")
        digest, stories = found
        entries = [(s, reading_paragraphs(s)[:1]) for s in stories]
        return page(request, "archive_digest.html", digest=digest, entries=entries)


# Admin API --------------------------------------------------------------------------------


class DigestIn(BaseModel):
    list: str = Field(max_length=64)
    period_key: str | None = Field(None, max_length=64)


class TestIn(BaseModel):
    list: str = Field(max_length=64)
    to: str = Field(max_length=320)
    digest_id: int | None = Field(None, ge=1, le=2**31 - 1)


URL = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2000,
        pattern=URL_PATTERN,
        description="A news page's http(s) address: its article becomes a story",
        examples=["https://news.example.com/world/2023/03/07/bakhmut"],
    ),
]
MAX_URLS = 20
FETCH_KEYS = frozenset({"url", "urls", "list"})


class StoriesFromPages(BaseModel):
    """Fetch news pages and keep their articles; `urls` in the digest's order (the first
    leads), after `url` if both are given."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: URL | None = None
    urls: list[URL] | None = Field(None, min_length=1, max_length=MAX_URLS)
    list_slug: str | None = Field(
        None, alias="list", min_length=1, max_length=64, pattern=SLUG.pattern
    )

    @model_validator(mode="after")
    def _some_url(self) -> StoriesFromPages:
        if self.url is None and not self.urls:
            raise ValueError("give 'url' or 'urls'")
        return self

    def pages(self) -> list[str]:
        return ([self.url] if self.url else []) + list(self.urls or [])


def _pages_request(data: bytes) -> StoriesFromPages | None:
    """A JSON body that asks for pages to be fetched ({"url"} or {"urls"}, with "list"),
    or None for a story given as JSON (which has a title, not only these keys)."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    if not isinstance(value, dict) or not ({"url", "urls"} & set(value)):
        return None
    if not set(value) <= FETCH_KEYS:
        return None
    try:
        return StoriesFromPages.model_validate(value)
    except ValidationError as exc:
        detail = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in exc.errors()
        ]
        raise HTTPException(422, detail) from None


PAGES_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": StoriesFromPages.model_json_schema(by_alias=True, mode="validation")
        }
    },
}


@router.post(
    "/api/stories",
    dependencies=admin,
    status_code=201,
    tags=["stories"],
    openapi_extra={"requestBody": PAGES_BODY},
)
async def post_stories(
    request: Request,
    list: str | None = Query(None, max_length=64, pattern=SLUG.pattern),  # noqa: A002
) -> JSONResponse:
    """Stories from news pages (JSON {"url": …} or {"urls": [...]}, with "list": each page
    fetched and its article extracted, all before any is stored, in the order given),
    or a story as JSON (object or array), Markdown with front matter, or plain text."""
    declared = request.headers.get("content-length") or "0"
    if declared.isdigit() and int(declared) > MAX_BYTES:
        raise HTTPException(413, f"A story body may be at most {MAX_BYTES // 2**20} MB.")
    data = await request.body()
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    pages = _pages_request(data) if mime == "application/json" else None
    if pages is not None:
        slug = pages.list_slug or list
        report = await run_in_threadpool(call, stories.add_urls, pages.pages(), slug)
    else:
        fmt = CONTENT_TYPES.get(mime)
        report = await run_in_threadpool(call, stories.add_body, data, fmt, list)
    body = {"added": report["added"], "skipped": len(report["skipped"])}
    return JSONResponse(body, status_code=201 if report["added"] else 200)


@router.get("/api/stories", dependencies=admin, tags=["stories"])
def get_stories(list: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
    return call(stories.list_stories, list)


@router.post("/api/digests", dependencies=admin, status_code=201, tags=["digests"])
def post_digest(body: DigestIn) -> dict[str, Any]:
    """Compose a draft of the list's next digest; 409 when it has no new stories."""
    return call(digests.compose, body.list, body.period_key, plain=True)


@router.get("/api/digests", dependencies=admin, tags=["digests"])
def get_digests(
    list: str | None = Query(None, max_length=64),  # noqa: A002
    limit: int = Query(50, ge=1, le=500),
) -> list[dict[str, Any]]:
    """Digests newest first: drafts and sends with their status."""
    return call(digests.list_digests, list, limit)


@router.get("/api/digests/preview", dependencies=admin, tags=["digests"])
def get_preview(list: str = Query(max_length=64)) -> dict[str, Any]:  # noqa: A002
    """The next digest as a reader would get it (HTML and text), without storing it."""
    preview = call(digests.preview, list)
    if preview is None:
        raise HTTPException(409, f"List {list!r} has no new stories since its previous digest.")
    return {**preview.record(), "html": preview.html, "text": preview.text}


@router.post("/api/digests/test", dependencies=admin, tags=["digests"])
def post_test(body: TestIn) -> dict[str, Any]:
    """Send the digest once to one address, outside the ledger."""
    return call(sending.test_send, body.list, body.to, body.digest_id)
