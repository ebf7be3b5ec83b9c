"""Admin API for feed sources: the same actions as `newsletter feeds …`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from newsletter.sources import actions
from newsletter.stories.fetch import URL_PATTERN
from newsletter.subscriptions.lists import SLUG
from newsletter.web.api import Id, call
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api/feeds", dependencies=[Depends(require_admin)], tags=["feeds"])


class FeedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2000,
        pattern=URL_PATTERN,
        description="An RSS or Atom feed's http(s) address",
        examples=["https://news.example.com/feed.xml"],
    )
    list: str = Field(
        min_length=1,
        max_length=64,
        pattern=SLUG.pattern,
        description="The list its entries are for",
    )


@router.get("")
def get_feeds(
    list: str | None = Query(None, min_length=1, max_length=64, pattern=SLUG.pattern),  # noqa: A002
) -> list[dict[str, Any]]:
    """Registered feeds with when each was last polled and how that went."""
    return call(actions.list_feeds, list)


@router.post("", status_code=201)
def post_feed(body: FeedIn) -> dict[str, Any]:
    """Register a feed for a list (polled by beat); 409 when the list has it already."""
    return call(actions.add_feed, body.url, body.list)


@router.delete("/{feed_id}")
def delete_feed(feed_id: Id) -> dict[str, Any]:
    """Stop polling a feed; the stories it brought stay."""
    return call(actions.remove_feed, feed_id)
