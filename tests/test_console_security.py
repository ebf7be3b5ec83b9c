"""Every console and admin API route, swept: without a session or token, with a viewer,
with a missing or wrong CSRF token; a cookie from before logout; no secret on any page;
login rate limits, session expiry, disabling, the Secure cookie.

The routes are read from the app itself, so a page or an endpoint added later is swept
too. FastAPI's TestClient runs the real app on a real SQLite database.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from newsletter import audit
from newsletter.accounts import actions as accounts
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import User
from tests.conftest import reset_caches
from workers.gateway import perform

PASSWORD = "correct horse battery staple"
OPERATOR = audit.Actor("cli:test", "cli", "owner")
PARAM = re.compile(r"{(\w+)(?::\w+)?}")
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
CHANGES = ("POST", "PUT", "PATCH", "DELETE")

# Changes any signed-in person may make, whatever their role (with the reason).
ANYONE_MAY = {
    ("POST", "/console/login"): "the login form itself (it has its own CSRF cookie)",
    ("POST", "/console/logout"): "everyone may log themselves out",
    ("POST", "/console/users/me/password"): "one's own password (the current one is asked)",
    ("POST", "/console/users/me/tokens"): "one's own API token, with one's own role",
    ("POST", "/console/users/me/tokens/{token_id}/revoke"): (
        "one's own tokens; the domain refuses another's (tested below)"
    ),
}
PUBLIC = {("GET", "/console/login"), ("POST", "/console/login"), ("GET", "/api/docs")}


# The routes -------------------------------------------------------------------------------


def concrete_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route under /console and /api.

    In this FastAPI, app.routes holds lazy included routers: walk their effective routes;
    add the OpenAPI paths and the console modules' routers, so a change in FastAPI's
    internals cannot make the sweep silently smaller.
    """
    from newsletter.web import console

    found: set[tuple[str, str]] = set()

    def walk(routes: Any) -> None:
        for route in routes:
            if hasattr(route, "effective_route_contexts"):
                walk(route.effective_route_contexts())
            elif isinstance(getattr(route, "methods", None), set | frozenset):
                found.update((m, route.path) for m in route.methods if m != "HEAD")

    walk(app.routes)
    for path, operations in app.openapi()["paths"].items():
        found.update((method.upper(), path) for method in operations)
    for module in console.MODULES:
        for route in module.router.routes:
            methods = getattr(route, "methods", None) or set()
            found.update((m, "/console" + route.path) for m in methods if m != "HEAD")
    return {(m, p) for m, p in found if p == "/console" or p.startswith(("/console/", "/api/"))}


def fill(path: str, values: dict[str, str] | None = None) -> str:
    """A concrete URL: known parameters from `values`, any other one "1"."""
    return PARAM.sub(lambda m: (values or {}).get(m.group(1), "1"), path)


def is_stream(path: str) -> bool:
    return path.endswith("/events")  # Server-Sent Events: an answer that does not end


# People -----------------------------------------------------------------------------------


def make_user(email: str, role: str, password: str = PASSWORD) -> str:
    with audit.acting_as(OPERATOR):
        perform(accounts.create_user, email, role, password)
    return email


def make_token(email: str) -> str:
    with audit.acting_as(OPERATOR):
        return str(perform(accounts.new_token, email)["token"])


class Person:
    """A browser without a browser: its own cookie jar on the same app."""

    def __init__(self, app: FastAPI, base_url: str = "http://testserver") -> None:
        self.http = TestClient(app, base_url=base_url, raise_server_exceptions=False)
        self.csrf = ""

    def login(self, email: str, password: str = PASSWORD) -> Any:
        form = self.http.get("/console/login")
        token = CSRF_FIELD.search(form.text)
        assert token, form.text
        answer = self.http.post(
            "/console/login",
            data={"email": email, "password": password, "csrf": token.group(1)},
            follow_redirects=False,
        )
        if answer.status_code == 303:
            page = self.http.get("/console")
            found = CSRF_FIELD.search(page.text)
            assert found, page.text
            self.csrf = found.group(1)
        return answer

    @property
    def session(self) -> str:
        return str(self.http.cookies.get("nl_console"))


@pytest.fixture
def make_app(sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., FastAPI]:
    def make(**env: str) -> FastAPI:
        for name, value in env.items():
            monkeypatch.setenv(f"NEWSLETTER_{name.upper()}", value)
        reset_caches()
        from newsletter.web.app import create_app

        return create_app()

    return make


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app()


def database_dump() -> list[str]:
    path = str(get_settings().database_url).removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        return list(connection.iterdump())


# The sweep --------------------------------------------------------------------------------


def test_the_sweep_sees_every_page_and_endpoint(app: FastAPI) -> None:
    routes = concrete_routes(app)
    for expected in [
        ("GET", "/console"),
        ("GET", "/console/users"),
        ("GET", "/console/audit"),
        ("POST", "/console/users/{user_id}/disable"),
        ("GET", "/api/users"),
        ("POST", "/api/users/{email}/token"),
        ("POST", "/api/sends/{send_id}/{action}"),
        ("DELETE", "/api/lists/{slug}"),
    ]:
        assert expected in routes
    assert set(ANYONE_MAY) <= routes, "the allow-list names a route that is gone"


def test_without_a_session_or_token_nothing_opens(app: FastAPI) -> None:
    anonymous = TestClient(app, raise_server_exceptions=False)
    for method, path in sorted(concrete_routes(app)):
        if (method, path) in PUBLIC:
            continue
        answer = anonymous.request(method, fill(path), follow_redirects=False)
        where = f"{method} {path}"
        if path.startswith("/api/"):
            assert answer.status_code == 401, where
        elif is_stream(path):
            assert answer.status_code in (303, 401), where  # an EventSource gets 401
        elif method == "GET":
            assert answer.status_code == 303, where
            assert answer.headers["location"].startswith("/console/login"), where
        else:
            assert answer.status_code in (401, 403), where


def test_a_viewer_changes_nothing_but_their_own_account(app: FastAPI) -> None:
    make_user("owner@example.com", "owner")
    viewer = Person(app)
    make_user("viewer@example.com", "viewer")
    assert viewer.login("viewer@example.com").status_code == 303
    api = {"Authorization": f"Bearer {make_token('viewer@example.com')}"}
    assert viewer.http.get("/api/lists", headers=api).status_code == 200  # its last use noted
    before = database_dump()
    for method, path in sorted(concrete_routes(app)):
        if method not in CHANGES or (method, path) in ANYONE_MAY:
            continue
        headers = api if path.startswith("/api/") else {"X-CSRF-Token": viewer.csrf}
        kwargs: dict[str, Any] = {"json": {}} if path.startswith("/api/") else {}
        answer = viewer.http.request(
            method, fill(path), headers=headers, follow_redirects=False, **kwargs
        )
        assert answer.status_code == 403, (method, path, answer.status_code, answer.text[:300])
    assert database_dump() == before

    # Pages only admins use: 403, and no link to them.
    assert viewer.http.get("/console/users").status_code == 403
    assert 'href="/console/users"' not in viewer.http.get("/console").text
    # Their own page works; someone else's token is not theirs to revoke.
    assert viewer.http.get("/console/users/me").status_code == 200
    make_token("owner@example.com")
    with session_scope() as session:
        owners = session.scalars(select_tokens_of("owner@example.com")).all()
    answer = viewer.http.post(
        f"/console/users/me/tokens/{owners[0]}/revoke",
        headers={"X-CSRF-Token": viewer.csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 403 and "only an admin or owner manages users" in answer.text


def select_tokens_of(email: str) -> Any:
    from sqlalchemy import select

    from newsletter.models import ApiToken

    return (
        select(ApiToken.id)
        .join(User, User.id == ApiToken.user_id)
        .where(User.email == email, ApiToken.revoked_at.is_(None))
    )


def test_a_console_change_without_the_right_csrf_token_is_refused(app: FastAPI) -> None:
    make_user("owner@example.com", "owner")
    owner = Person(app)
    owner.login("owner@example.com")
    before = database_dump()
    wrong = "x" * len(owner.csrf)
    for method, path in sorted(concrete_routes(app)):
        if method not in CHANGES or not path.startswith("/console") or (method, path) in PUBLIC:
            continue
        url = fill(path)
        for attempt in (
            {},  # none at all
            {"headers": {"X-CSRF-Token": wrong}},
            {"data": {"csrf": wrong}},
            {"data": {"csrf": ""}},
        ):
            answer = owner.http.request(method, url, follow_redirects=False, **attempt)
            assert answer.status_code == 403, (method, path, attempt, answer.status_code)
    assert database_dump() == before
    # The owner is still logged in, and the right token works.
    assert owner.http.get("/console").status_code == 200


def test_the_login_form_needs_its_own_csrf_cookie(app: FastAPI) -> None:
    make_user("owner@example.com", "owner")
    stranger = TestClient(app, raise_server_exceptions=False)
    answer = stranger.post(
        "/console/login",
        data={"email": "owner@example.com", "password": PASSWORD, "csrf": "forged"},
        follow_redirects=False,
    )
    assert answer.status_code == 403 and "nl_console" not in answer.headers.get("set-cookie", "")


def test_a_session_cookie_from_before_logout_opens_nothing(app: FastAPI) -> None:
    make_user("desk@example.com", "admin")
    person = Person(app)
    person.login("desk@example.com")
    cookie, csrf = person.session, person.csrf
    answer = person.http.post("/console/logout", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    thief = TestClient(app, raise_server_exceptions=False)
    thief.cookies.set("nl_console", cookie)
    page = thief.get("/console/users", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/console/login")
    change = thief.post(
        "/console/users",
        data={"csrf": csrf, "email": "x@example.com", "role": "owner"},
        follow_redirects=False,
    )
    assert change.status_code == 401


# No secret on any page ----------------------------------------------------------------------

ADMIN_TOKEN = "admin-token-d6f0a8c1e9b24c7f"
SECRET_KEY = "secret-key-4b1e77d0c3a94e2a"
SMTP_PASSWORD = "smtp-pass-91c2e6f4"


def _populate() -> None:
    from newsletter.digests import actions as digests
    from newsletter.stories import actions as stories
    from newsletter.subscriptions import actions as subscriptions

    with audit.acting_as(OPERATOR):
        perform(subscriptions.create_list, "news", "The News", None, "UTC")
        perform(subscriptions.add_subscriber, "reader@example.org", "news", "Ana", True)
        story = b"# A story\n\nA paragraph of the story, long enough to be one."
        perform(stories.add_body, story, "markdown", "news")
        perform(digests.compose, "news")


def test_no_secret_appears_on_any_page(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
        smtp_url=f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:9",
    )
    people = {
        "owner@example.com": ("owner", "owner password 0f3b9a"),
        "admin@example.com": ("admin", "admin password 7c2d41"),
        "editor@example.com": ("editor", "editor password 5e8a06"),
        "viewer@example.com": ("viewer", "viewer password 2b9f7d"),
    }
    for email, (role, password) in people.items():
        make_user(email, role, password)
    tokens = [make_token(email) for email in people]
    _populate()
    owner = Person(app)
    owner.login("owner@example.com", people["owner@example.com"][1])
    # The token made on a page is on that page (once), and must be on no other.
    made = owner.http.post("/console/users/me/tokens", data={"csrf": owner.csrf})
    assert made.status_code == 201 and "shown only this once" in made.text
    found = re.search(r'value="(nlt_[^"]+)"', made.text)
    assert found
    tokens.append(found.group(1))

    with session_scope() as session:
        users = session.scalars(select_users()).all()
        hashes = [u.password_hash for u in users]
        ids = {u.email: str(u.id) for u in users}
    cookie = owner.session
    secrets = {
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SECRET_KEY": SECRET_KEY,
        "SMTP password": SMTP_PASSWORD,
        "session cookie": cookie,
        "session id": cookie.rsplit(".", 1)[0],
        "argon2": "$argon2",
    }
    secrets.update({f"password of {e}": p for e, (_, p) in people.items()})
    secrets.update({f"token {t[:8]}": t for t in tokens})
    secrets.update({f"token hash {t[:8]}": hashlib.sha256(t.encode()).hexdigest() for t in tokens})
    secrets.update({f"password hash {i}": h for i, h in enumerate(hashes)})

    seen = 0
    routes = sorted(p for m, p in concrete_routes(app) if m == "GET" and not is_stream(p))
    for path in routes:
        urls = {fill(path, {"slug": "news", "user_id": i}) for i in ids.values()}
        for url in urls:
            if url.startswith("/api/"):
                answer = owner.http.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            else:
                answer = owner.http.get(url)
            seen += answer.status_code == 200
            for name, secret in secrets.items():
                assert secret not in answer.text, f"{name} on {url}"
    assert seen >= 20  # real pages, not only refusals
    # The pages were pages, not login forms.
    listing = owner.http.get("/console/users").text
    assert all(email in listing for email in people)


def select_users() -> Any:
    from sqlalchemy import select

    return select(User)


# Logins, sessions and cookies --------------------------------------------------------------


def test_logins_are_limited_per_address_of_the_caller(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(login_limit_ip="3", login_limit_account="100")
    make_user("desk@example.com", "viewer")
    person = Person(app)
    for _ in range(3):
        assert person.login("desk@example.com", "wrong password 1234").status_code == 401
    limited = person.login("desk@example.com")  # the right password, too late
    assert limited.status_code == 429 and "Too many attempts" in limited.text
    assert "nl_console" not in person.http.cookies


def test_failed_logins_lock_the_account_even_for_the_right_password(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(login_limit_ip="100", login_limit_account="2")
    make_user("desk@example.com", "viewer")
    make_user("chief@example.com", "viewer")
    guesser = Person(app)
    assert guesser.login("desk@example.com", "guess number one!").status_code == 401
    assert guesser.login("desk@example.com", "guess number two!").status_code == 401
    assert guesser.login("desk@example.com", "guess number three").status_code == 429
    locked = Person(app).login("desk@example.com")
    assert locked.status_code == 429 and "Too many failed attempts" in locked.text
    assert Person(app).login("chief@example.com").status_code == 303  # others log in


def test_a_session_expires(make_app: Callable[..., FastAPI]) -> None:
    # 3.6 s: long enough for the first request to arrive in time on a loaded machine (at
    # about a second it once came too late under a full CI run).
    app = make_app(console_session_hours="0.001")
    make_user("desk@example.com", "viewer")
    person = Person(app)
    person.login("desk@example.com")
    cookie = person.session
    # The cookie is sent by hand: the server must refuse it, not the client forget it.
    fresh = TestClient(app, raise_server_exceptions=False)
    fresh.cookies.set("nl_console", cookie)
    assert fresh.get("/console", follow_redirects=False).status_code == 200
    time.sleep(3.8)
    late = fresh.get("/console", follow_redirects=False)
    assert late.status_code == 303 and late.headers["location"].startswith("/console/login")


def test_disabling_a_user_ends_their_session_and_tokens_at_once(app: FastAPI) -> None:
    make_user("editor@example.com", "editor")
    editor = Person(app)
    editor.login("editor@example.com")
    token = {"Authorization": f"Bearer {make_token('editor@example.com')}"}
    assert editor.http.get("/console", follow_redirects=False).status_code == 200
    assert editor.http.get("/api/lists", headers=token).status_code == 200
    with audit.acting_as(OPERATOR):
        perform(accounts.disable_user, "editor@example.com")
    after = editor.http.get("/console", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/console/login")
    assert editor.http.get("/api/lists", headers=token).status_code == 401
    assert Person(app).login("editor@example.com").status_code == 401


@pytest.mark.parametrize("base_url", ["https://news.example.org", "http://localhost:8000"])
def test_the_session_cookie_is_secure_when_the_site_is_https(
    make_app: Callable[..., FastAPI], base_url: str
) -> None:
    app = make_app(base_url=base_url)
    make_user("desk@example.com", "viewer")
    person = Person(app, base_url="https://testserver")
    answer = person.login("desk@example.com")
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("nl_console="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags and "samesite=lax" in flags
    assert ("secure" in flags) == base_url.startswith("https://")
    form_cookie = person.http.get("/console/login").headers["set-cookie"]  # the form's CSRF
    assert ("secure" in form_cookie.lower()) == base_url.startswith("https://")


@pytest.fixture(autouse=True)
def _no_leftover_actor() -> Iterator[None]:
    yield
    audit.set_actor(audit.SYSTEM)


def test_one_s_own_password_needs_the_current_one_and_ends_the_session(app: FastAPI) -> None:
    make_user("desk@example.com", "viewer")
    person = Person(app)
    person.login("desk@example.com")
    new = "a much better passphrase"
    wrong = person.http.post(
        "/console/users/me/password",
        data={
            "csrf": person.csrf,
            "current_password": "not it at all",
            "password": new,
            "password_again": new,
        },
    )
    assert wrong.status_code == 422 and "the current password is wrong" in wrong.text
    done = person.http.post(
        "/console/users/me/password",
        data={
            "csrf": person.csrf,
            "current_password": PASSWORD,
            "password": new,
            "password_again": new,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/console/login")
    assert person.http.get("/console", follow_redirects=False).status_code == 303
    assert Person(app).login("desk@example.com").status_code == 401
    assert Person(app).login("desk@example.com", new).status_code == 303
    assert Person(app).login("desk\x00@example.com").status_code == 401
