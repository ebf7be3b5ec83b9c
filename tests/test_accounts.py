"""Operator accounts as the domain keeps them: who may manage whom, tokens shown once and
stored hashed, passwords, and the audit log every change writes (never a secret)."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil
from typing import Any

import pytest
from sqlalchemy import select

import newsletter
from newsletter import audit
from newsletter.accounts import actions, sessions
from newsletter.accounts.roles import Capability, can
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.errors import Conflict, Forbidden, InvalidInput
from newsletter.models import ApiToken, AuditEntry, User
from workers.gateway import perform

PASSWORD = "correct horse battery staple"
CLI = audit.Actor("cli:desk", "cli", "owner")


def as_(actor: audit.Actor, action: Any, *args: Any) -> Any:
    with audit.acting_as(actor):
        return perform(action, *args)


def person(email: str, role: str) -> audit.Actor:
    return audit.Actor(email, "console", role)


def log() -> list[tuple[str, str, str, str]]:
    with session_scope() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        return [(e.actor, e.via, e.action, e.target) for e in rows]


@pytest.fixture
def staff(sqlite_db: str) -> None:
    as_(CLI, actions.create_user, "owner@example.com", "owner", PASSWORD)
    as_(CLI, actions.create_user, "admin@example.com", "admin", PASSWORD)
    as_(CLI, actions.create_user, "editor@example.com", "editor", PASSWORD)


def test_each_role_can_what_the_one_before_it_can() -> None:
    assert can("viewer", Capability.read) and not can("viewer", Capability.stories)
    assert can("editor", Capability.test_send) and not can("editor", Capability.send)
    assert can("sender", Capability.send) and not can("sender", Capability.users)
    assert can("admin", Capability.users) and not can("admin", Capability.owners)
    assert can("owner", Capability.owners)
    assert not can("nobody", Capability.read)


def test_an_admin_manages_users_but_only_an_owner_touches_an_owner(staff: None) -> None:
    admin = person("admin@example.com", "admin")
    made = as_(admin, actions.create_user, "sub@example.com", "sender", PASSWORD)
    assert made["role"] == "sender" and "password_hash" not in made
    for attempt in (
        (actions.create_user, "boss@example.com", "owner", PASSWORD),
        (actions.set_role, "sub@example.com", "owner"),
        (actions.disable_user, "owner@example.com"),
        (actions.set_password, "owner@example.com", "a new password 123"),
        (actions.new_token, "owner@example.com"),
    ):
        with pytest.raises(Forbidden, match="only an owner manages owners"):
            as_(admin, *attempt)
    with pytest.raises(Forbidden, match="only an admin or owner manages users"):
        as_(person("editor@example.com", "editor"), actions.disable_user, "admin@example.com")


def test_the_last_owner_stays_an_owner(staff: None) -> None:
    owner = person("owner@example.com", "owner")
    with pytest.raises(Conflict, match="last owner"):
        as_(owner, actions.disable_user, "owner@example.com")
    with pytest.raises(Conflict, match="last owner"):
        as_(owner, actions.set_role, "owner@example.com", "admin")
    as_(owner, actions.set_role, "admin@example.com", "owner")
    assert as_(owner, actions.set_role, "owner@example.com", "admin")["role"] == "admin"


def test_bad_input_is_refused_with_a_message(staff: None) -> None:
    with pytest.raises(InvalidInput, match="at least 12 characters"):
        as_(CLI, actions.create_user, "short@example.com", "viewer", "short")
    with pytest.raises(InvalidInput, match="unknown role"):
        as_(CLI, actions.create_user, "odd@example.com", "root", PASSWORD)
    with pytest.raises(Conflict, match="already a user"):
        as_(CLI, actions.create_user, "Admin@Example.com", "viewer", PASSWORD)


def test_a_token_is_shown_once_kept_hashed_and_can_be_revoked(staff: None) -> None:
    editor = person("editor@example.com", "editor")
    made = as_(editor, actions.new_token, "editor@example.com")
    token = made["token"]
    assert token.startswith("nlt_") and len(token) > 40
    listed = as_(editor, actions.list_tokens, "editor@example.com")
    assert token not in repr(listed) and listed[0]["prefix"] == token[:12]
    with session_scope() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert sessions.token_actor(session, token) == audit.Actor(
            "editor@example.com", "api", "editor"
        )
    as_(editor, actions.revoke_token, made["id"])
    with session_scope() as session:
        assert sessions.token_actor(session, token) is None


def test_someone_else_s_token_is_theirs_to_revoke_or_an_admin_s(staff: None) -> None:
    made = as_(CLI, actions.new_token, "admin@example.com")
    with pytest.raises(Forbidden):
        as_(person("editor@example.com", "editor"), actions.revoke_token, made["id"])


def test_changing_one_s_own_password_needs_the_current_one_and_ends_sessions(staff: None) -> None:
    settings = get_settings()
    with session_scope() as session:
        opened = sessions.login(session, settings, "editor@example.com", PASSWORD, "127.0.0.1")
    editor = person("editor@example.com", "editor")
    with pytest.raises(InvalidInput, match="current password is wrong"):
        as_(editor, actions.change_own_password, "not my password", "a brand new password")
    as_(editor, actions.change_own_password, PASSWORD, "a brand new password")
    with session_scope() as session:
        assert sessions.current(session, settings, opened.cookie) is None
        with pytest.raises(InvalidInput):
            sessions.login(session, settings, "editor@example.com", PASSWORD, "127.0.0.1")
        sessions.login(session, settings, "editor@example.com", "a brand new password", "::1")


def test_every_change_is_in_the_audit_log_without_a_secret(staff: None) -> None:
    admin = person("admin@example.com", "admin")
    as_(admin, actions.set_role, "editor@example.com", "sender")
    token = as_(admin, actions.new_token, "editor@example.com")["token"]
    as_(admin, actions.set_password, "editor@example.com", "another password 42")
    as_(admin, actions.disable_user, "editor@example.com")
    as_(admin, actions.enable_user, "editor@example.com")
    entries = log()
    assert ("cli:desk", "cli", "users.create", "editor@example.com") in entries
    assert [e[2] for e in entries if e[0] == "admin@example.com"] == [
        "users.role",
        "users.token",
        "users.password",
        "users.disable",
        "users.enable",
    ]
    with session_scope() as session:
        hashes = [u.password_hash for u in session.scalars(select(User))]
    text = repr(entries)
    for secret in [PASSWORD, "another password 42", token, *hashes]:
        assert secret not in text


def test_an_erased_reader_s_address_leaves_the_audit_log(staff: None) -> None:
    from newsletter.subscriptions import actions as subscriptions

    as_(CLI, subscriptions.create_list, "news", "News", None, "UTC")
    as_(CLI, subscriptions.add_subscriber, "ana.reader@example.org", "news", "Ana", True)
    assert any("ana.reader@example.org" in e[3] for e in log())
    as_(CLI, subscriptions.erase_subscriber, "ana.reader@example.org")
    entries = log()
    assert entries[-1][2] == "subscribers.erase"
    assert not any("ana.reader" in repr(e) for e in entries)


# Functions in */actions.py and */editing.py that change nothing an operator did, or
# record it themselves.
NOT_DECORATED = {
    "add_urls": "calls add_files, which records stories.add",
    "begin_import": "records subscribers.import itself, once for a file imported in parts",
    "import_part": "a part of the import begin_import recorded",
    "poll": "beat's every minute (bounce mailbox, feeds): the system, not an operator",
    "preflight": "reads",
    "preview": "renders, writes nothing",
    "preview_import": "the dry run: writes nothing",
    "pick_digest": "reads",
    "status": "reads",
    "report": "reads",
    "subscribe_reader": "a reader's own sign-up, kept in its consent record",
    "renew_link": "a reader's own request",
    "confirm_link": "a reader's own link",
    "unsubscribe_link": "a reader's own link",
    "confirmation_view": "reads",
    "unsubscribe_view": "reads",
}
READS = ("list_", "get_", "find_")


def test_every_operator_action_is_audited() -> None:
    """A new action in newsletter/*/actions.py (or editing.py) is recorded, or says here
    why not."""
    missing, modules, checked = [], [], 0
    for found in pkgutil.iter_modules(newsletter.__path__):
        if not found.ispkg:
            continue
        for face in ("actions", "editing"):
            try:
                modules.append(importlib.import_module(f"newsletter.{found.name}.{face}"))
            except ModuleNotFoundError:
                continue
    for module in modules:
        for name, func in inspect.getmembers(module, inspect.isfunction):
            if func.__module__ != module.__name__ or name.startswith(("_", *READS)):
                continue
            signature = inspect.signature(func)
            if not str(signature.return_annotation).startswith("Done["):
                continue  # a helper of the actions, not one the faces call
            if list(signature.parameters)[:2] != ["session", "settings"]:
                continue
            checked += 1
            if not hasattr(func, "__wrapped__") and name not in NOT_DECORATED:
                missing.append(f"{module.__name__}.{name}")
    assert checked >= 30, "the actions are no longer found"
    assert not missing, f"decorate with @audit.audited (or say why not here): {missing}"


@pytest.fixture(autouse=True)
def _no_leftover_actor() -> Any:
    yield
    audit.set_actor(audit.SYSTEM)


# The admin API for users -------------------------------------------------------------------


def test_the_users_api_creates_lists_disables_and_makes_tokens(database: str) -> None:
    from fastapi.testclient import TestClient

    from newsletter.web.app import create_app

    as_(CLI, actions.create_user, "owner@example.com", "owner", PASSWORD)
    as_(CLI, actions.create_user, "admin@example.com", "admin", PASSWORD)
    api = TestClient(create_app(), raise_server_exceptions=False)

    def bearer(email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {as_(CLI, actions.new_token, email)['token']}"}

    admin = bearer("admin@example.com")
    made = api.post(
        "/api/users", json={"email": "Ed@Example.com", "role": "editor", "password": PASSWORD}
    )
    assert made.status_code == 401
    made = api.post(
        "/api/users",
        json={"email": "Ed@Example.com", "role": "editor", "password": PASSWORD},
        headers=admin,
    )
    assert made.status_code == 201 and made.json()["email"] == "ed@example.com"
    owner = api.post(
        "/api/users",
        json={"email": "boss@example.com", "role": "owner", "password": PASSWORD},
        headers=admin,
    )
    assert owner.status_code == 403
    assert owner.json()["detail"][0]["message"] == "only an owner manages owners"
    short = api.post(
        "/api/users", json={"email": "x@example.com", "role": "viewer", "password": "short"}
    )
    assert short.status_code == 401  # no token: nothing is even validated
    short = api.post(
        "/api/users",
        json={"email": "x@example.com", "role": "viewer", "password": "short"},
        headers=admin,
    )
    assert short.status_code == 422

    editor = bearer("ed@example.com")
    assert api.get("/api/users", headers=editor).status_code == 403  # not staff business
    assert api.post("/api/users/admin@example.com/disable", headers=editor).status_code == 403
    listed = api.get("/api/users", headers=admin)
    assert [u["email"] for u in listed.json()] == [
        "admin@example.com",
        "ed@example.com",
        "owner@example.com",
    ]
    assert "password" not in listed.text and "$argon2" not in listed.text

    token = api.post("/api/users/ed@example.com/token", headers=admin)
    assert token.status_code == 201 and token.json()["token"].startswith("nlt_")
    fresh = {"Authorization": f"Bearer {token.json()['token']}"}
    assert api.get("/api/lists", headers=fresh).status_code == 200
    assert token.json()["token"] not in api.get("/api/users", headers=admin).text

    assert api.post("/api/users/ed@example.com/disable", headers=admin).json()["disabled"]
    assert api.get("/api/lists", headers=fresh).status_code == 401
    assert api.post("/api/users/nobody@example.com/disable", headers=admin).status_code == 404
    assert api.post("/api/users/a%00b@example.com/disable", headers=admin).status_code == 404
    assert api.post("/api/users/owner@example.com/disable", headers=admin).status_code == 403
    entries = [e for e in log() if e[1] == "api"]
    assert [(e[0], e[2]) for e in entries] == [
        ("admin@example.com", "users.create"),
        ("admin@example.com", "users.token"),
        ("admin@example.com", "users.disable"),
    ]
