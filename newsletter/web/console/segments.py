"""/console/segments: a list's segments with their live counts, and (admins) a form to
save one and a button to remove one. Works without JavaScript: a malformed expression
comes back in the form with the message and a caret under the column it names."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from newsletter.accounts.roles import Capability
from newsletter.accounts.sessions import Current
from newsletter.segments import actions
from newsletter.subscriptions import actions as list_actions
from newsletter.web.console.core import ActionFailed, SignedIn, act, redirect, render, requires

router = APIRouter()
Admin = Annotated[Current, requires(Capability.lists)]
Text = Annotated[str, Form()]
_COLUMN = re.compile(r"column (\d+):")


def _page(
    request: Request,
    list_slug: str | None,
    form: dict[str, str] | None = None,
    error: str = "",
    field: str = "",
    status: int = 200,
) -> HTMLResponse:
    lists = act(list_actions.list_lists)
    slugs = [str(item["slug"]) for item in lists]
    if list_slug and list_slug not in slugs:
        raise ActionFailed(404, f"There is no list called {list_slug!r}.")
    segments = act(actions.list_segments, list_slug or None, True)
    found = _COLUMN.match(error) if field == "where" else None
    column = int(found.group(1)) if found else None
    form = form or {"list": list_slug or (slugs[0] if slugs else ""), "slug": "", "name": ""}
    form.setdefault("where", "")
    context: dict[str, Any] = {
        "lists": lists,
        "list_slug": list_slug or "",
        "segments": segments,
        "form": form,
        "error": error,
        "field": field,
        "column": column,
    }
    return render(request, "segments.html", status=status, **context)


@router.get("/segments", response_class=HTMLResponse)
def segments_page(
    request: Request,
    current: SignedIn,
    list_slug: Annotated[str | None, Query(alias="list", max_length=64)] = None,
) -> HTMLResponse:
    return _page(request, list_slug)


@router.post("/segments/new", response_model=None)
def create_segment(
    request: Request,
    current: Admin,
    slug: Text = "",
    list_slug: Annotated[str, Form(alias="list")] = "",
    name: Text = "",
    where: Text = "",
) -> Response:
    form = {"slug": slug, "list": list_slug, "name": name, "where": where}
    try:
        act(actions.create, slug.strip(), list_slug, where, name or None)
    except ActionFailed as exc:
        return _page(
            request,
            list_slug or None,
            form,
            error=exc.message,
            field=exc.field,
            status=exc.status if exc.status != 422 else 400,
        )
    return redirect(f"/console/segments?list={list_slug}", f"Segment {slug.strip()} saved.")


@router.post("/segments/{slug}/delete", response_model=None)
def delete_segment(request: Request, slug: str, current: Admin) -> Response:
    removed = act(actions.delete, slug)
    return redirect(f"/console/segments?list={removed['list']}", f"Segment {slug} removed.")
