"""Admin API for the preflight: the same report as `newsletter digest preflight --json`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from newsletter.preflight import actions
from newsletter.subscriptions.lists import SLUG
from newsletter.web.api import MAX_ID, call
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api/lists", dependencies=[Depends(require_admin)], tags=["lists"])
Slug = Annotated[
    str, Path(min_length=1, max_length=64, pattern=SLUG.pattern, description="The list's slug")
]


@router.get("/{slug}/preflight")
def get_preflight(
    slug: Slug,
    digest: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Default: newest draft")
    ] = None,
) -> dict[str, Any]:
    """What a send of the list would meet: every finding, and whether one blocks it
    (`blocked`; POST /api/sends then answers 409 unless `skip_preflight`)."""
    return call(actions.preflight, slug, digest).record()
