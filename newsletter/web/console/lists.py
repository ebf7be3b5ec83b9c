"""/console/lists: the lists with their readers, and (admins) create, edit, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from newsletter.accounts.roles import Capability
from newsletter.accounts.sessions import Current
from newsletter.db import session_scope
from newsletter.stats import aggregates
from newsletter.subscriptions import actions, lists
from newsletter.web.console.core import ActionFailed, SignedIn, act, redirect, render, requires

router = APIRouter()
Admin = Annotated[Current, requires(Capability.lists)]
Text = Annotated[str, Form()]


def _counts() -> tuple[dict[str, dict[str, int]], datetime | None]:
    """Readers per list and state from the maintained snapshot (newsletter/stats): a
    list made since the last refresh has none yet."""
    with session_scope() as session:
        counts = aggregates.list_counts(session)
    return {c.slug: c.by_status for c in counts.lists}, counts.refreshed_at


@router.get("/lists", response_class=HTMLResponse)
def lists_page(request: Request, current: SignedIn) -> HTMLResponse:
    counts, counted_at = _counts()
    return render(
        request, "lists.html", lists=act(actions.list_lists), counts=counts, counted_at=counted_at
    )


def _find(slug: str) -> dict[str, object]:
    for record in act(actions.list_lists):
        if record["slug"] == slug:
            return record
    raise ActionFailed(404, f"There is no list called {slug!r}.")


def _form(
    request: Request,
    record: dict[str, object],
    *,
    new: bool,
    error: str = "",
    field: str = "",
    status: int = 200,
) -> HTMLResponse:
    return render(
        request, "list_form.html", status=status, record=record, new=new, error=error, field=field
    )


@router.get("/lists/new", response_class=HTMLResponse)
def new_list_form(request: Request, current: Admin) -> HTMLResponse:
    return _form(request, {"slug": "", "name": "", "schedule": "", "timezone": "UTC"}, new=True)


def _audience(
    welcome: str,
    local_time: str,
    track_clicks: str,
    track_opens: str,
    sunset_after: str,
    weekly: str,
    form_fields: str,
) -> tuple[lists.Options, dict[str, object]]:
    """The form's audience options as lists.Options (every one given: an unticked box is
    off), and as the record to show again when the form comes back with an error."""
    try:
        sunset = int(sunset_after.strip() or "0")
    except ValueError:
        raise ActionFailed(
            422, "sunset after: a whole number of digests (0: never)", "sunset_after"
        ) from None
    fields = lists.field_specs(form_fields.splitlines()[:20])
    options = lists.Options(
        welcome=bool(welcome),
        local_time=local_time.strip(),
        track_clicks=bool(track_clicks),
        track_opens=bool(track_opens),
        sunset_after=sunset,
        weekly=weekly.strip(),
        form_fields=fields,
    )
    shown: dict[str, object] = {
        "welcome": bool(welcome),
        "local_time": local_time.strip(),
        "track_clicks": bool(track_clicks),
        "track_opens": bool(track_opens),
        "sunset_after": sunset_after.strip(),
        "weekly": weekly.strip(),
        "form_fields_text": form_fields,
    }
    return options, shown


@router.post("/lists/new", response_model=None)
def create_list(
    request: Request,
    current: Admin,
    slug: Text = "",
    name: Text = "",
    schedule: Text = "",
    timezone: Text = "UTC",
    welcome: Text = "",
    local_time: Text = "",
    track_clicks: Text = "",
    track_opens: Text = "",
    sunset_after: Text = "",
    weekly: Text = "",
    form_fields: Text = "",
) -> Response:
    record: dict[str, object] = {
        "slug": slug,
        "name": name,
        "schedule": schedule,
        "timezone": timezone,
    }
    try:
        options, shown = _audience(
            welcome, local_time, track_clicks, track_opens, sunset_after, weekly, form_fields
        )
        record.update(shown)
        act(
            actions.create_list,
            slug.strip(),
            name,
            schedule.strip() or None,
            timezone.strip(),
            options=options,
        )
    except ActionFailed as exc:
        return _form(
            request, record, new=True, error=exc.message, field=exc.field, status=exc.status
        )
    return redirect("/console/lists", f"List {slug.strip()} created.")


@router.get("/lists/{slug}/edit", response_class=HTMLResponse)
def edit_list_form(request: Request, slug: str, current: SignedIn) -> HTMLResponse:
    return _form(request, _find(slug), new=False)


@router.post("/lists/{slug}/edit", response_model=None)
def update_list(
    request: Request,
    slug: str,
    current: Admin,
    name: Text = "",
    schedule: Text = "",
    timezone: Text = "UTC",
    welcome: Text = "",
    local_time: Text = "",
    track_clicks: Text = "",
    track_opens: Text = "",
    sunset_after: Text = "",
    weekly: Text = "",
    form_fields: Text = "",
) -> Response:
    record: dict[str, object] = {
        "slug": slug,
        "name": name,
        "schedule": schedule,
        "timezone": timezone,
    }
    try:
        options, shown = _audience(
            welcome, local_time, track_clicks, track_opens, sunset_after, weekly, form_fields
        )
        record.update(shown)
        act(
            actions.update_list,
            slug,
            name=name,
            schedule=schedule.strip() or None,
            timezone=timezone.strip(),
            clear_schedule=not schedule.strip(),
            options=options,
        )
    except ActionFailed as exc:
        return _form(
            request, record, new=False, error=exc.message, field=exc.field, status=exc.status
        )
    return redirect("/console/lists", f"List {slug} saved.")


@router.get("/lists/{slug}/delete", response_class=HTMLResponse)
def delete_list_form(request: Request, slug: str, current: Admin) -> HTMLResponse:
    counts = _counts()[0].get(slug, {})
    return render(request, "list_delete.html", record=_find(slug), readers=sum(counts.values()))


@router.post("/lists/{slug}/delete", response_model=None)
def delete_list(request: Request, slug: str, current: Admin, typed: Text = "") -> Response:
    record = _find(slug)
    if typed.strip() != slug:
        counts = _counts()[0].get(slug, {})
        return render(
            request,
            "list_delete.html",
            status=422,
            record=record,
            readers=sum(counts.values()),
            error=f"You typed {typed.strip()!r}, not {slug!r}: nothing was deleted.",
        )
    removed = act(actions.delete_list, slug)
    return redirect(
        "/console/lists",
        f"List {slug} deleted with {removed['subscriptions']} subscriptions "
        f"and {removed['digests']} digests.",
    )
