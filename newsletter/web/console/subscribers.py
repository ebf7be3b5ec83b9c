"""/console/subscribers: find readers, look one up, and (admins) add, import, export, erase.

Searching is an index range and keyset pages (subscriptions/search.py); a CSV import is
a dry run first, then runs in parts on a thread of this process with its progress on a
page that refreshes itself (subscriptions/imports.py), so a big file never holds a
request open.
"""

from __future__ import annotations

import contextvars
import io
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import select

from newsletter.accounts.roles import Capability
from newsletter.accounts.sessions import Current
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.models import Subscriber
from newsletter.subscriptions import actions, editing, imports, search
from newsletter.subscriptions.addresses import normalise_email
from newsletter.subscriptions.export import begin_export, csv_chunks
from newsletter.subscriptions.reader import ReaderView, reader_view
from newsletter.web.api import MAX_ID
from newsletter.web.console.core import ActionFailed, SignedIn, act, redirect, render, requires
from workers.gateway import perform

router = APIRouter()
Admin = Annotated[Current, requires(Capability.subscribers)]
Text = Annotated[str, Form()]
Flag = Annotated[bool, Form()]

_running: set[str] = set()
_lock = threading.Lock()


def _list_slugs() -> list[str]:
    return [str(r["slug"]) for r in act(actions.list_lists)]


@router.get("/subscribers", response_class=HTMLResponse)
def subscribers_page(
    request: Request,
    current: SignedIn,
    q: Annotated[str, Query(max_length=320)] = "",
    by: Annotated[str, Query(max_length=16)] = "address",
    list: Annotated[str, Query(max_length=64)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    after: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    field: search.Field = "name" if by == "name" else "address"
    try:
        with session_scope() as session:
            page = search.search(
                session,
                query=q,
                field=field,
                list_slug=list or None,
                status=status or None,
                after=after,
            )
            about = search.about_total(session)
    except InvalidInput as exc:
        raise ActionFailed(422, exc.message) from None
    params = {"q": q, "by": field, "list": list, "status": status}
    next_url = None
    if page.next_after is not None:
        keep = {k: v for k, v in params.items() if v and not (k == "by" and v == "address")}
        next_url = "/console/subscribers?" + urlencode({**keep, "after": page.next_after})
    return render(
        request,
        "subscribers.html",
        page=page,
        params=params,
        about=about,
        next_url=next_url,
        first_page=after is None,
        lists=_list_slugs(),
        subscription_states=search.SUBSCRIPTION_STATES,
        reader_states=search.READER_STATES,
    )


# Adding one reader ------------------------------------------------------------------------


def _add_form(
    request: Request, values: dict[str, Any], error: str = "", status: int = 200
) -> HTMLResponse:
    return render(
        request,
        "subscriber_add.html",
        status=status,
        values=values,
        error=error,
        lists=_list_slugs(),
    )


@router.get("/subscribers/new", response_class=HTMLResponse)
def add_form(request: Request, current: Admin, list: str = "") -> HTMLResponse:
    return _add_form(request, {"email": "", "name": "", "list": list, "confirmed": False})


@router.post("/subscribers/new", response_model=None)
def add(
    request: Request,
    current: Admin,
    email: Text = "",
    name: Text = "",
    list: Text = "",
    confirmed: Flag = False,
) -> Response:
    values = {"email": email, "name": name, "list": list, "confirmed": confirmed}
    try:
        done = act(actions.add_subscriber, email, list, name, confirmed)
    except ActionFailed as exc:
        return _add_form(request, values, exc.message, exc.status)
    outcome = str(done["outcome"]).replace("_", " ")
    address = normalise_email(email)
    with session_scope() as session:
        found = session.scalar(select(Subscriber.id).where(Subscriber.email == address))
    return redirect(
        f"/console/subscribers/{found}" if found else "/console/subscribers",
        f"{address} on {list}: {outcome}.",
    )


# Importing a CSV ----------------------------------------------------------------------------


def _import_form(
    request: Request, values: dict[str, Any], error: str = "", status: int = 200
) -> HTMLResponse:
    return render(
        request, "import.html", status=status, values=values, error=error, lists=_list_slugs()
    )


@router.get("/subscribers/import", response_class=HTMLResponse)
def import_form(request: Request, current: Admin, list: str = "") -> HTMLResponse:
    return _import_form(request, {"list": list, "confirmed": False})


@router.post("/subscribers/import", response_model=None)
def dry_run(
    request: Request,
    current: Admin,
    file: UploadFile,
    list: Text = "",
    confirmed: Flag = False,
) -> Response:
    """Keep the file and start its dry run (nothing else is written); its page follows."""
    values = {"list": list, "confirmed": confirmed}
    settings = get_settings()
    try:
        text = imports.decode(file.file.read(imports.MAX_BYTES + 1))
        # The header and the list are checked at once; the rows on the dry run's thread.
        header = io.StringIO(text.partition("\n")[0])
        act(actions.preview_import, header, list, confirmed)
    except InvalidInput as exc:
        return _import_form(request, values, exc.message, 422)
    except ActionFailed as exc:
        return _import_form(request, values, exc.message, exc.status)
    job = imports.create(settings, text, list, confirmed, file.filename or "upload.csv")

    def preview(stream: io.StringIO, progress: Callable[[int], None]) -> dict[str, Any]:
        return perform(actions.preview_import, stream, list, confirmed, progress)

    _background(job.id, lambda: imports.check(settings, job.id, preview))
    return redirect(f"/console/subscribers/import/{job.id}")


def _background(job_id: str, work: Callable[[], object]) -> None:
    """Run `work` on a thread of its own, once per job at a time, as the acting person
    (the copied context carries them, so the audit log names who imported)."""

    def run() -> None:
        try:
            work()
        finally:
            with _lock:
                _running.discard(job_id)

    with _lock:
        _running.add(job_id)
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(run,), name=f"import-{job_id}", daemon=True).start()


def _job(job_id: str) -> imports.Job:
    try:
        return imports.load(get_settings(), job_id)
    except InvalidInput as exc:
        raise ActionFailed(404, exc.message) from None


@router.get("/subscribers/import/{job_id}", response_class=HTMLResponse)
def import_page(request: Request, job_id: str, current: SignedIn) -> HTMLResponse:
    return render(request, "import_job.html", job=_job(job_id))


@router.post("/subscribers/import/{job_id}", response_model=None)
def start_import(request: Request, job_id: str, current: Admin) -> Response:
    settings = get_settings()
    job = _job(job_id)
    with _lock:
        if job.id in _running or (job.state in ("checking", "running") and not job.stalled):
            raise ActionFailed(409, "This file is being checked or imported already.")
        if job.state == "done":
            raise ActionFailed(409, "This file has been imported already.")
        if not job.preview:
            raise ActionFailed(409, "This file's dry run did not finish; upload it again.")
    if job.state == "previewed":
        act(actions.begin_import, job.list_slug, job.rows, job.confirmed)

    def part(stream: io.StringIO, first_line: int) -> dict[str, Any]:
        return perform(actions.import_part, stream, job.list_slug, job.confirmed, first_line)

    imports.begin(settings, job.id)
    _background(job.id, lambda: imports.run(settings, job.id, part))
    return redirect(f"/console/subscribers/import/{job.id}")


# Exporting a list -----------------------------------------------------------------------------


@router.post("/subscribers/export", response_model=None)
def export(request: Request, current: Admin, list: Text = "") -> Response:
    list_id = act(begin_export, list)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return StreamingResponse(
        csv_chunks(session_scope, list_id),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{list}-subscribers-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


# One reader -------------------------------------------------------------------------------


def _reader(subscriber_id: int) -> ReaderView:
    if subscriber_id > MAX_ID:
        raise ActionFailed(404, f"There is no reader {subscriber_id}.")
    try:
        with session_scope() as session:
            return reader_view(session, subscriber_id)
    except InvalidInput as exc:
        raise ActionFailed(404, exc.message) from None


@router.get("/subscribers/{subscriber_id:int}", response_class=HTMLResponse)
def reader_page(request: Request, subscriber_id: int, current: SignedIn) -> HTMLResponse:
    return render(request, "reader.html", reader=_reader(subscriber_id))


@router.post("/subscribers/{subscriber_id:int}/attributes", response_model=None)
def set_attributes(
    request: Request, subscriber_id: int, current: Admin, attributes: Text = ""
) -> Response:
    """The attributes as a JSON object, replacing the reader's; checked by
    attributes.clean (through editing.set_attributes), the error shown beside the form."""
    reader = _reader(subscriber_id)
    try:
        try:
            value = json.loads(attributes or "{}")
        except ValueError as exc:
            raise ActionFailed(422, f"not JSON: {exc}", "attributes") from None
        act(editing.set_attributes, reader.email, value, replace=True)
    except ActionFailed as exc:
        return render(
            request,
            "reader.html",
            status=exc.status,
            reader=reader,
            attributes_error=exc.message,
            attributes_text=attributes,
        )
    return redirect(f"/console/subscribers/{subscriber_id}", "Attributes saved.")


@router.get("/subscribers/{subscriber_id:int}/erase", response_class=HTMLResponse)
def erase_form(request: Request, subscriber_id: int, current: Admin) -> HTMLResponse:
    return render(request, "subscriber_erase.html", reader=_reader(subscriber_id))


@router.post("/subscribers/{subscriber_id:int}/erase", response_model=None)
def erase(request: Request, subscriber_id: int, current: Admin, typed: Text = "") -> Response:
    reader = _reader(subscriber_id)
    if typed.strip().lower() != reader.email:
        return render(
            request,
            "subscriber_erase.html",
            status=422,
            reader=reader,
            error="That is not this reader's address exactly: nothing was erased.",
        )
    act(actions.erase_subscriber, reader.email)
    return redirect("/console/subscribers", "The reader was erased; the address is suppressed.")
