"""Admin API under /api/, behind the bearer token: lists and subscribers, and /metrics.

Each route parses, calls one action (newsletter/*/actions.py) and returns its value.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from newsletter.db import session_scope
from newsletter.metrics import prometheus_text
from newsletter.subscriptions import actions, editing, lists
from newsletter.web.api import call
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


class FormField(BaseModel):
    name: str = Field(max_length=40)
    label: str | None = Field(None, max_length=200)
    required: bool = False


class ListOptions(BaseModel):
    """A list's audience options (subscriptions/lists.py Options); null leaves one as it
    is. `local_time` and `weekly` take "" to turn them off, `sunset_after` 0."""

    welcome: bool | None = None
    local_time: str | None = Field(None, max_length=5, description="HH:MM, '' for at once")
    track_clicks: bool | None = None
    track_opens: bool | None = None
    sunset_after: int | None = Field(None, description="digests without a click; 0: never")
    weekly: str | None = Field(None, max_length=100, description="cron of the round-up; ''")
    form_fields: list[FormField] | None = Field(None, max_length=20)

    def options(self) -> lists.Options:
        fields = None
        if self.form_fields is not None:
            fields = [
                {"name": f.name, "label": f.label or f.name, "required": f.required}
                for f in self.form_fields
            ]
        return lists.Options(
            welcome=self.welcome,
            local_time=self.local_time,
            track_clicks=self.track_clicks,
            track_opens=self.track_opens,
            sunset_after=self.sunset_after,
            weekly=self.weekly,
            form_fields=fields,
        )


class ListIn(BaseModel):
    slug: str = Field(max_length=64)
    name: str = Field(max_length=200)
    schedule: str | None = Field(None, max_length=100)
    timezone: str = Field("UTC", max_length=64)
    template_dir: str | None = Field(
        None,
        max_length=1000,
        description="Folder of the list's own digest templates (subject.txt, body.txt, "
        "body.html extending builtin/digest/...), tried with a sample digest first",
    )
    options: ListOptions | None = None


class ListUpdate(BaseModel):
    name: str | None = Field(None, max_length=200)
    schedule: str | None = Field(None, max_length=100, description="null keeps it, '' removes it")
    timezone: str | None = Field(None, max_length=64)
    template_dir: str | None = Field(
        None, max_length=1000, description="null keeps it, '' goes back to the built-in ones"
    )
    options: ListOptions | None = None


class SubscriberIn(BaseModel):
    email: str = Field(max_length=320)
    list: str = Field(max_length=64)
    name: str = Field("", max_length=200)
    confirmed: bool = False
    attributes: dict[str, Any] | None = Field(
        None, description="The reader's attributes (text, numbers, true/false)"
    )


class SubscriberPatch(BaseModel):
    attributes: dict[str, Any] = Field(
        description="Merged into the reader's: a null value removes one; with `replace` "
        "they become exactly these"
    )
    replace: bool = False


class EraseIn(BaseModel):
    email: str = Field(max_length=320)


@router.get("/lists", tags=["lists"])
def get_lists() -> list[dict[str, Any]]:
    return call(actions.list_lists)


@router.post("/lists", status_code=201, tags=["lists"])
def post_list(body: ListIn) -> dict[str, Any]:
    options = body.options.options() if body.options is not None else None
    return call(
        actions.create_list,
        body.slug,
        body.name,
        body.schedule,
        body.timezone,
        body.template_dir,
        options=options,
    )


@router.patch("/lists/{slug}", tags=["lists"])
def patch_list(slug: str, body: ListUpdate) -> dict[str, Any]:
    clear = body.schedule is not None and not body.schedule.strip()
    builtin = body.template_dir is not None and not body.template_dir.strip()
    return call(
        actions.update_list,
        slug,
        name=body.name,
        schedule=None if clear else body.schedule,
        timezone=body.timezone,
        clear_schedule=clear,
        template_dir=None if builtin else body.template_dir,
        clear_template_dir=builtin,
        options=body.options.options() if body.options is not None else None,
    )


@router.delete("/lists/{slug}", tags=["lists"])
def delete_list(slug: str) -> dict[str, Any]:
    """The list with its subscriptions and digests; the subscribers stay."""
    return call(actions.delete_list, slug)


@router.get("/subscribers", tags=["subscribers"])
def get_subscribers(list: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
    return call(actions.list_subscribers, list)


@router.post(
    "/subscribers",
    status_code=201,
    tags=["subscribers"],
    responses={
        409: {
            "description": "The reader unsubscribed from the list, complained, bounced or "
            "was erased; the message names the reason (only the reader can come back)."
        }
    },
)
def post_subscriber(body: SubscriberIn) -> dict[str, Any]:
    """Add one address; without `confirmed` it gets the confirmation mail.

    Refused with 409 for a reader who unsubscribed from the list, complained, bounced or
    was erased: an operator never overrides the reader's own decision.
    """
    return call(
        actions.add_subscriber, body.email, body.list, body.name, body.confirmed, body.attributes
    )


@router.patch("/subscribers/{email}", tags=["subscribers"])
def patch_subscriber(email: str, body: SubscriberPatch) -> dict[str, Any]:
    """Set a reader's attributes: merged (null removes one) or, with `replace`, replaced.
    400 with the reason for a bad name or value (a list, an object, too long, too many)."""
    return call(editing.set_attributes, email, body.attributes, replace=body.replace, invalid=400)


@router.post("/subscribers/erase", tags=["subscribers"])
def erase_subscriber(body: EraseIn) -> dict[str, Any]:
    """Delete everything about a person; keep only an anonymous suppression hash."""
    return call(actions.erase_subscriber, body.email)


def prometheus_metrics() -> str:
    """GET /metrics (newsletter/web/app.py): the counts newsletter/metrics.py reads."""
    with session_scope() as session:
        return prometheus_text(session)
