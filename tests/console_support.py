"""The console as an operator meets it: `newsletter web` (and a worker when a test sends)
started as processes on the embedded default, driven in Debian's Chromium.

`check_page` runs axe-core on the page at desktop and phone width, fails on a serious or
critical violation or on a page wider than the phone, and writes both screenshots to
test-output/console/<name>-desktop.png and -phone.png for people to look at.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright

from tests.send_support import send_env
from tests.services import AppProcesses, SmtpServer, unavailable

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "test-output" / "console"
PASSWORD = "correct horse battery staple"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


class Console:
    """The running service and the people who use it."""

    def __init__(self, app: AppProcesses) -> None:
        self.app = app
        self.base = app.base_url

    def url(self, path: str) -> str:
        return self.base + path

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            env=self.app.env,
            cwd=self.app.workdir,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"newsletter {' '.join(args)}: {done.stderr}{done.stdout}")
        return done.stdout

    def user(self, email: str, role: str, password: str = PASSWORD) -> str:
        self.cli(
            "users", "create", email, "--role", role, "--password-stdin", stdin=password + "\n"
        )
        return email


def console_env(app: AppProcesses, data_dir: Path, smtp_url: str, database: str) -> None:
    app.env.update(send_env(data_dir, smtp_url, database, None))
    # The console is reached at the test server itself, over plain HTTP.
    app.env["NEWSLETTER_BASE_URL"] = app.base_url
    app.env.pop("NEWSLETTER_ENV", None)


@pytest.fixture
def console(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Console]:
    """`newsletter web` on SQLite in the test's own data dir; the test's SMTP server."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    app = AppProcesses({}, tmp_path)
    console_env(app, data_dir, smtp_server.url, f"sqlite:///{data_dir / 'newsletter.db'}")
    app.run("db", "upgrade")
    app.start_web()
    try:
        yield Console(app)
    finally:
        app.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        unavailable("Debian's Chromium", f"no {CHROMIUM}", "apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Browser) -> Page:
    """A fresh browser profile (its own cookies) at desktop width."""
    width, height = WIDTHS["desktop"]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(15_000)
    return context.new_page()


def login(page: Page, console: Console, email: str, password: str = PASSWORD) -> None:
    page.goto(console.url("/console/login"))
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/console/login" not in url)


def check_page(page: Page, name: str) -> list[Path]:
    """axe-core at desktop and phone width (no serious or critical violation, nothing
    wider than the phone) and a full-page screenshot of each; back at desktop width."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    shots = []
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(100)
        shot = SHOTS / f"{name}-{label}.png"
        page.screenshot(path=str(shot), full_page=True)
        shots.append(shot)
        results = Axe().run(page)
        bad = [
            (v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, (name, label, bad)
        if label == "phone":
            overflow: Any = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{name} is {overflow}px wider than a {width}px phone"
    width, height = WIDTHS["desktop"]
    page.set_viewport_size({"width": width, "height": height})
    return shots
