"""/console/stories: the story list, adding (paste, upload, a feed), editing, deleting.

Adding goes through the same actions as `newsletter stories add` and the API
(stories.actions.add_body); a feed is registered for a list (sources.actions.add_feed)
rather than imported on the spot: beat polls it from then on with conditional GET and
the private-address guard, and the request fetches nothing (import_feed also reads local
files, which a web form must never name). Edit and delete are stories/editing.py.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from newsletter.accounts.roles import Capability
from newsletter.accounts.sessions import Current
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.errors import NotFound
from newsletter.models import FeedSource, MailingList, Story
from newsletter.sources import actions as feeds
from newsletter.stories import actions, editing
from newsletter.stories.drafts import MAX_BYTES
from newsletter.web.console.core import ActionFailed, SignedIn, act, redirect, render, requires

router = APIRouter()
PAGE = 50
MAX_ID = 2**31 - 1
FORMATS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown"}
FORMATS[".json"] = "json"
Editor = Annotated[Current, requires(Capability.stories)]


def list_choices(session: Session) -> list[tuple[str, str]]:
    """(slug, name) of the lists, for the forms' list choice (a handful of rows)."""
    rows = session.execute(select(MailingList.slug, MailingList.name).order_by(MailingList.slug))
    return [(slug, name) for slug, name in rows.all()[:500]]


@router.get("/stories", response_class=HTMLResponse)
def stories_page(
    request: Request,
    current: SignedIn,
    list_slug: Annotated[str, Query(alias="list", max_length=64)] = "",
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> HTMLResponse:
    """Latest first (by id, the order they were stored), PAGE at a time (keyset)."""
    with session_scope() as session:
        lists = list_choices(session)
        names = dict(session.execute(select(MailingList.id, MailingList.slug)).all())
        query = select(Story).order_by(Story.id.desc()).limit(PAGE + 1)
        chosen = None
        if list_slug:
            chosen = session.scalar(select(MailingList).where(MailingList.slug == list_slug))
            if chosen is None:
                raise ActionFailed(404, f"There is no newsletter called {list_slug!r}.")
            query = query.where(or_(Story.list_id == chosen.id, Story.list_id.is_(None)))
        if after:
            query = query.where(Story.id < after)
        found = list(session.scalars(query))
        rows = [
            {
                "id": s.id,
                "title": s.title,
                "list": names.get(s.list_id) if s.list_id else None,
                "section": s.section,
                "published": s.published_at,
            }
            for s in found[:PAGE]
        ]
        feed_rows: list[dict[str, Any]] = []
        if chosen is not None:
            feed_rows = [
                {"url": f.url, "status": f.last_status, "polled": f.last_polled_at}
                for f in session.scalars(
                    select(FeedSource).where(FeedSource.list_id == chosen.id).limit(50)
                )
            ]
    return render(
        request,
        "stories.html",
        stories=rows,
        lists=lists,
        list_slug=list_slug,
        feeds=feed_rows,
        next_after=rows[-1]["id"] if len(found) > PAGE else None,
        after=after,
    )


def _list_or_none(value: str) -> str | None:
    return value.strip() or None


@router.post("/stories/paste")
def add_pasted(
    current: Editor,
    title: Annotated[str, Form(max_length=500)] = "",
    body: Annotated[str, Form(max_length=MAX_BYTES)] = "",
    list_slug: Annotated[str, Form(alias="list", max_length=64)] = "",
) -> Response:
    """Title and a Markdown (or plain text) body, as one Markdown story."""
    if not title.strip():
        raise ActionFailed(422, "Give the story a headline.")
    if not body.strip():
        raise ActionFailed(422, "Write the story's text.")
    front = yaml.safe_dump({"title": " ".join(title.split())}, allow_unicode=True)
    document = f"---\n{front}---\n\n{body}"
    done = act(actions.add_body, document.encode(), "markdown", _list_or_none(list_slug))
    return _added(done)


@router.post("/stories/upload")
def add_uploaded(
    current: Editor,
    story_file: Annotated[UploadFile, File(alias="file")],
    list_slug: Annotated[str, Form(alias="list", max_length=64)] = "",
) -> Response:
    """A story file as `stories add` takes it: .txt, .md or .json."""
    name = PurePath(story_file.filename or "").name
    fmt = FORMATS.get(PurePath(name).suffix.lower())
    if fmt is None:
        raise ActionFailed(422, "Upload a .txt, .md or .json story file.")
    data = story_file.file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ActionFailed(413, f"{name} is larger than {MAX_BYTES // (1024 * 1024)} MB.")
    return _added(act(actions.add_body, data, fmt, _list_or_none(list_slug)))


def _added(done: dict[str, Any]) -> Response:
    added, skipped = done["added"], done["skipped"]
    if len(added) == 1:
        message = f"Added “{added[0]['title']}”."
        if done["warnings"]:
            message += " " + "; ".join(done["warnings"])[:300]
        return redirect(f"/console/stories/{added[0]['id']}", message)
    if added:
        return redirect("/console/stories", f"Added {len(added)} stories.")
    if skipped:
        return redirect("/console/stories", "That story is stored already; nothing was added.")
    return redirect("/console/stories", "Nothing was added.")


@router.post("/stories/feed")
def add_feed(
    current: Editor,
    url: Annotated[str, Form(max_length=2000)] = "",
    list_slug: Annotated[str, Form(alias="list", max_length=64)] = "",
) -> Response:
    act(feeds.add_feed, url, list_slug)
    minutes = get_settings().feed_poll_minutes
    return redirect(
        f"/console/stories?list={list_slug}",
        f"Feed registered for {list_slug}: its new entries come in within {minutes} minutes.",
    )


def _story(session: Session, story_id: int) -> Story:
    try:
        return editing.find_story(session, story_id)
    except NotFound as exc:
        raise ActionFailed(404, exc.message) from None


@router.get("/stories/{story_id}", response_class=HTMLResponse)
def story_page(request: Request, current: SignedIn, story_id: int) -> HTMLResponse:
    with session_scope() as session:
        story = _story(session, story_id)
        digests = [
            {"id": d.id, "status": d.status, "subject": d.subject}
            for d in editing.digests_with(session, story)
        ]
        list_name = session.scalar(select(MailingList.slug).where(MailingList.id == story.list_id))
        context: dict[str, Any] = {
            "story": {
                "id": story.id,
                "slug": story.slug,
                "title": story.title,
                "lede": story.lede,
                "body": story.body,
                "section": story.section or "",
                "image": story.image,
                "image_alt": story.image_alt or "",
                "image_credit": story.image_credit or "",
                "url": story.url,
                "list": list_name,
            },
            "digests": digests,
            "sent": [d for d in digests if d["status"] != "draft"],
        }
    base = get_settings().base_url
    return render(request, "stories_edit.html", page_url=f"{base}/stories/", **context)


@router.post("/stories/{story_id}")
def edit_story(
    current: Editor,
    story_id: int,
    title: Annotated[str, Form(max_length=500)] = "",
    lede: Annotated[str, Form(max_length=20_000)] = "",
    body: Annotated[str, Form(max_length=MAX_BYTES)] = "",
    section: Annotated[str, Form(max_length=100)] = "",
    image_alt: Annotated[str, Form(max_length=500)] = "",
    image_credit: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    edit = editing.StoryEdit(title, lede, body, section, image_alt, image_credit)
    act(editing.edit_story, story_id, edit)
    return redirect(f"/console/stories/{story_id}", "Saved.")


@router.get("/stories/{story_id}/delete", response_class=HTMLResponse)
def delete_form(request: Request, current: Editor, story_id: int) -> HTMLResponse:
    with session_scope() as session:
        story = _story(session, story_id)
        title = story.title
    return render(request, "stories_delete.html", story={"id": story_id, "title": title})


@router.post("/stories/{story_id}/delete")
def delete_story(current: Editor, story_id: int) -> Response:
    done = act(editing.delete_story, story_id)
    return redirect("/console/stories", f"Deleted “{done['title']}”.")
