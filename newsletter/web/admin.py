"""Admin API under /api/, behind the bearer token: lists and subscribers, and /metrics.

Each route parses, calls one action (newsletter/*/actions.py) and returns its value.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from newsletter.db import session_scope
from newsletter.metrics import prometheus_text
from newsletter.subscriptions import actions
from newsletter.web.api import call
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


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


class ListUpdate(BaseModel):
    name: str | None = Field(None, max_length=200)
    schedule: str | None = Field(None, max_length=100, description="null keeps it, '' removes it")
    timezone: str | None = Field(None, max_length=64)
    template_dir: str | None = Field(
        None, max_length=1000, description="null keeps it, '' goes back to the built-in ones"
    )


class SubscriberIn(BaseModel):
    email: str = Field(max_length=320)
    list: str = Field(max_length=64)
    name: str = Field("", max_length=200)
    confirmed: bool = False


class EraseIn(BaseModel):
    email: str = Field(max_length=320)


@router.get("/lists", tags=["lists"])
def get_lists() -> list[dict[str, Any]]:
    return call(actions.list_lists)


@router.post("/lists", status_code=201, tags=["lists"])
def post_list(body: ListIn) -> dict[str, Any]:
    return call(
        actions.create_list, body.slug, body.name, body.schedule, body.timezone, body.template_dir
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
    return call(actions.add_subscriber, body.email, body.list, body.name, body.confirmed)


@router.post("/subscribers/erase", tags=["subscribers"])
def erase_subscriber(body: EraseIn) -> dict[str, Any]:
    """Delete everything about a person; keep only an anonymous suppression hash."""
    return call(actions.erase_subscriber, body.email)


def prometheus_metrics() -> str:
    """GET /metrics (newsletter/web/app.py): the counts newsletter/metrics.py reads."""
    with session_scope() as session:
        return prometheus_text(session)
