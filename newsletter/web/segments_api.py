"""Admin API for segments under /api/segments: the same actions as `newsletter segments …`.

A malformed expression is 400 with the column in the message
(`{"detail": [{"field": "where", "message": "column 12: expected …"}]}`); an unknown
segment or list 404; a slug taken 409. Changes need the `lists` capability.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from newsletter.segments import actions
from newsletter.web.api import call
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api/segments", tags=["segments"], dependencies=[Depends(require_admin)])
Slug = Annotated[str, Path(max_length=64, description="The segment's slug")]


class SegmentIn(BaseModel):
    slug: str = Field(min_length=1, max_length=64)
    list: str = Field(min_length=1, max_length=64, description="The list whose readers it filters")
    where: str = Field(min_length=1, max_length=2000, description='e.g. attributes.city = "Kyiv"')
    name: str | None = Field(None, max_length=200)


class SegmentChange(BaseModel):
    where: str | None = Field(None, min_length=1, max_length=2000)
    name: str | None = Field(None, max_length=200)


@router.get("")
def get_segments(
    list: Annotated[str | None, Query(max_length=64)] = None,  # noqa: A002 - the public name
    count: bool = False,
) -> list[dict[str, Any]]:
    """Segments by slug; `?list=SLUG` only that list's, `?count=true` with live counts."""
    return call(actions.list_segments, list, count, invalid=400)


@router.post("", status_code=201)
def post_segment(body: SegmentIn) -> dict[str, Any]:
    return call(actions.create, body.slug, body.list, body.where, body.name, invalid=400)


@router.get("/{slug}")
def get_segment(slug: Slug) -> dict[str, Any]:
    return call(actions.get_segment, slug)


@router.patch("/{slug}")
def patch_segment(slug: Slug, body: SegmentChange) -> dict[str, Any]:
    return call(actions.update, slug, body.where, body.name, invalid=400)


@router.delete("/{slug}")
def delete_segment(slug: Slug) -> dict[str, Any]:
    return call(actions.delete, slug)


@router.get("/{slug}/count")
def get_count(slug: Slug) -> dict[str, Any]:
    """The live count of confirmed, active readers of the list the segment selects."""
    return call(actions.get_count, slug, invalid=400)
