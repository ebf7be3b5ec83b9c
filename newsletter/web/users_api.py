"""Admin API for operator accounts under /api/users (admins and owners: auth.needed_for).

The same actions as `newsletter users …` and /console/users; a new token is in the
answer to the request that made it, and nowhere else ever again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from newsletter.accounts import actions
from newsletter.accounts.passwords import MAX_LENGTH
from newsletter.web.api import call
from newsletter.web.auth import require_admin

router = APIRouter(prefix="/api/users", tags=["users"], dependencies=[Depends(require_admin)])
Email = Annotated[str, Path(max_length=320, description="The user's e-mail address")]


class UserIn(BaseModel):
    email: str = Field(max_length=320)
    role: str = Field(max_length=16, description="viewer, editor, sender, admin or owner")
    password: str = Field(max_length=MAX_LENGTH, description="At least 12 characters")


@router.get("")
def get_users() -> list[dict[str, Any]]:
    return call(actions.list_users)


@router.post("", status_code=201)
def post_user(body: UserIn) -> dict[str, Any]:
    """Create an account; only an owner creates an owner (403)."""
    return call(actions.create_user, body.email, body.role, body.password)


@router.post("/{email}/disable")
def post_disable(email: Email) -> dict[str, Any]:
    """Its console sessions end and its API tokens stop working at once."""
    return call(actions.disable_user, email)


@router.post("/{email}/token", status_code=201)
def post_token(email: Email) -> dict[str, Any]:
    """A new API token, in this answer only (the service keeps its hash)."""
    return call(actions.new_token, email)
