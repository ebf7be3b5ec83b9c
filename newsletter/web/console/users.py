"""/console/users: operator accounts (admins and owners) and everyone's own page.

/console/users and /console/users/{id} need the `users` capability; /console/users/me is
anyone's own page: their password and their own API tokens. Who may change whom (only an
owner touches an owner) is decided by accounts/actions.py; its refusal is the message
the page shows. A new token is in the answer to the POST that made it and never again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.accounts import actions
from newsletter.accounts.roles import ORDER, Capability
from newsletter.accounts.sessions import Current
from newsletter.web.api import Id
from newsletter.web.console.core import ActionFailed, SignedIn, act, redirect, render, requires

router = APIRouter()
Admin = Annotated[Current, requires(Capability.users)]
Text = Annotated[str, Form()]
ROLES = [r.value for r in ORDER]


def when(iso: str | None) -> str:
    """An ISO time as the page shows it (the service keeps UTC)."""
    if not iso:
        return "never"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


def _page(
    request: Request,
    user: dict[str, Any],
    own: bool,
    status: int = 200,
    error: str = "",
    form: str = "",
) -> HTMLResponse:
    tokens = act(actions.list_tokens, user["email"])
    base = "/console/users/me" if own else f"/console/users/{user['id']}"
    return render(
        request,
        "users_user.html",
        status=status,
        user=user,
        own=own,
        base=base,
        tokens=tokens,
        roles=ROLES,
        when=when,
        error=error,
        error_form=form,
    )


def _user(user_id: int) -> dict[str, Any]:
    return act(actions.get_user, user_id)


def _own(current: Current) -> dict[str, Any]:
    return act(actions.get_user, current.user_id)


def _same_twice(password: str, again: str) -> None:
    if password != again:
        raise ActionFailed(422, "the two passwords are not the same", "password")


# The list and creating an account ---------------------------------------------------------


def _list(
    request: Request, status: int = 200, error: str = "", email: str = "", role: str = ""
) -> HTMLResponse:
    return render(
        request,
        "users.html",
        status=status,
        users=act(actions.list_users),
        roles=ROLES,
        when=when,
        error=error,
        email=email,
        role=role or "viewer",
    )


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, current: Admin) -> HTMLResponse:
    return _list(request)


@router.post("/users")
def create(
    request: Request,
    current: Admin,
    email: Text = "",
    role: Text = "",
    password: Text = "",
    password_again: Text = "",
) -> Response:
    email, role = email.strip()[:320], role.strip()[:16]
    try:
        if not email:
            raise ActionFailed(422, "an e-mail address is required", "email")
        _same_twice(password, password_again)
        made = act(actions.create_user, email, role, password)
    except ActionFailed as exc:
        return _list(request, exc.status, exc.message, email, role)
    return redirect(f"/console/users/{made['id']}", f"Created {made['email']} ({made['role']}).")


# Anyone's own page: password and tokens ----------------------------------------------------


@router.get("/users/me", response_class=HTMLResponse)
def own_page(request: Request, current: SignedIn) -> HTMLResponse:
    return _page(request, _own(current), own=True)


@router.post("/users/me/password")
def own_password(
    request: Request,
    current: SignedIn,
    current_password: Text = "",
    password: Text = "",
    password_again: Text = "",
) -> Response:
    try:
        _same_twice(password, password_again)
        act(actions.change_own_password, current_password, password)
    except ActionFailed as exc:
        return _page(request, _own(current), True, exc.status, exc.message, "password")
    # A new password ends every session of the account, this one too.
    return redirect("/console/login", "Your password is changed; log in with the new one.")


@router.post("/users/me/tokens", response_class=HTMLResponse)
def own_token(request: Request, current: SignedIn) -> HTMLResponse:
    made = act(actions.new_token, current.actor.name)
    return render(request, "users_token.html", status=201, made=made, back="/console/users/me")


@router.post("/users/me/tokens/{token_id}/revoke")
def own_revoke(request: Request, current: SignedIn, token_id: Id) -> RedirectResponse:
    act(actions.revoke_token, token_id)
    return redirect("/console/users/me", "The token is revoked.")


# An admin's page for one account ------------------------------------------------------------


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_page(request: Request, current: Admin, user_id: Id) -> HTMLResponse:
    return _page(request, _user(user_id), own=user_id == current.user_id)


@router.post("/users/{user_id}/role")
def change_role(request: Request, current: Admin, user_id: Id, role: Text = "") -> Response:
    user = act(actions.set_role, _user(user_id)["email"], role.strip()[:16])
    return redirect(f"/console/users/{user_id}", f"{user['email']} is now {user['role']}.")


@router.post("/users/{user_id}/disable")
def disable(request: Request, current: Admin, user_id: Id) -> Response:
    user = act(actions.disable_user, _user(user_id)["email"])
    return redirect(
        f"/console/users/{user_id}",
        f"{user['email']} is disabled: logged out everywhere, API tokens revoked.",
    )


@router.post("/users/{user_id}/enable")
def enable(request: Request, current: Admin, user_id: Id) -> Response:
    user = act(actions.enable_user, _user(user_id)["email"])
    return redirect(f"/console/users/{user_id}", f"{user['email']} is enabled.")


@router.post("/users/{user_id}/password")
def set_password(
    request: Request,
    current: Admin,
    user_id: Id,
    password: Text = "",
    password_again: Text = "",
) -> Response:
    user = _user(user_id)
    try:
        _same_twice(password, password_again)
        act(actions.set_password, user["email"], password)
    except ActionFailed as exc:
        return _page(request, user, False, exc.status, exc.message, "password")
    return redirect(
        f"/console/users/{user_id}", f"New password set for {user['email']}; they log in again."
    )


@router.post("/users/{user_id}/tokens", response_class=HTMLResponse)
def user_token(request: Request, current: Admin, user_id: Id) -> HTMLResponse:
    made = act(actions.new_token, _user(user_id)["email"])
    return render(
        request, "users_token.html", status=201, made=made, back=f"/console/users/{user_id}"
    )


@router.post("/users/{user_id}/tokens/{token_id}/revoke")
def user_revoke(request: Request, current: Admin, user_id: Id, token_id: Id) -> RedirectResponse:
    act(actions.revoke_token, token_id)
    return redirect(f"/console/users/{user_id}", "The token is revoked.")
