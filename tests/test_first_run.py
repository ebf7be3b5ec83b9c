"""What a person meets first: the form, the API docs offline, the outbox, the CLI elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsletter.config import SmtpConfig, get_settings
from newsletter.db import session_scope
from newsletter.mail.catcher import start_catcher
from newsletter.mail.smtp import SmtpTransport
from newsletter.subscriptions.lists import create_list
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(sqlite_db: str):
    from newsletter.web.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


class Tags(HTMLParser):
    """Every tag with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


# 11. /subscribe?list=unknown --------------------------------------------------------------


def test_subscribe_to_an_unknown_list_is_a_404_that_says_so(client: TestClient):
    with session_scope() as session:
        create_list(session, "news", "The Newsroom Daily")
    known = client.get("/subscribe?list=news")
    assert known.status_code == 200 and "The Newsroom Daily" in known.text

    page = client.get("/subscribe?list=unknown")
    assert page.status_code == 404
    assert "There is no newsletter called" in page.text and "unknown" in page.text
    links = [a.get("href") for tag, a in tags(page.text) if tag == "a"]
    assert "/subscribe" in links
    assert 'name="email"' not in page.text  # not the default list's form in disguise


# 13. /api/docs without internet ----------------------------------------------------------


def test_api_docs_load_everything_from_this_origin(client: TestClient):
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    urls = [
        a.get("src") or a.get("href")
        for tag, a in tags(docs.text)
        if tag in ("script", "link") and (a.get("src") or a.get("href"))
    ]
    assert len(urls) >= 3  # the bundle, the stylesheet, the icon
    for url in urls:
        assert url and url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200 and asset.content, url
    assert "http://" not in docs.text.replace("http://testserver", "")
    assert "https://" not in docs.text
    csp = docs.headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in csp  # the page's own inline start-up script only
    assert "http" not in csp and "*" not in csp and "unsafe-eval" not in csp
    assert client.get("/openapi.json").status_code == 200


def test_the_wheel_carries_swagger_ui_and_its_licence(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("newsletter-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"):
        assert f"newsletter/web/static/swagger-ui/{name}" in names, name


# 14. The outbox's frame opens links in a new tab ------------------------------------------


def test_links_in_the_outbox_frame_open_in_a_new_tab(client: TestClient):
    port = free_port()
    catcher = start_catcher(get_settings().outbox_dir, port=port)
    try:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", "Confirm"
        msg.set_content("plain")
        msg.add_alternative(
            '<html><head><title>x</title></head><body><p><a href="http://127.0.0.1:8000/'
            'confirm/abc">Yes, subscribe me</a></p></body></html>',
            subtype="html",
        )
        transport = SmtpTransport(SmtpConfig(f"smtp://127.0.0.1:{port}"))
        transport.send(msg.as_bytes(), "a@example.org", ["b@example.org"])
        transport.close()
    finally:
        catcher.stop()
    key = client.get("/outbox").text.split('href="/outbox/')[1].split('"')[0]
    shown = client.get(f"/outbox/{key}")
    (frame,) = [a for tag, a in tags(shown.text) if tag == "iframe"]
    sandbox = (frame["sandbox"] or "").split()
    assert "allow-popups" in sandbox and "allow-popups-to-escape-sandbox" in sandbox
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    inner = tags(frame["srcdoc"] or "")
    assert inner[0] == ("html", {})
    bases = [a for tag, a in inner if tag == "base"]
    assert bases == [{"target": "_blank"}]
    assert [t for t, _ in inner].index("base") < [t for t, _ in inner].index("a")
    (link,) = [a for tag, a in inner if tag == "a"]
    assert link["target"] == "_blank" and link["rel"] == "noopener"
    assert link["href"] == "http://127.0.0.1:8000/confirm/abc"


# The CLI as a person runs it ---------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(extra)
    return env


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        env=clean_env(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# 15. A command run from another folder ------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["lists", "list"],
        ["subscribers", "add", "reader@example.org", "--list", "news"],
        ["sends", "list", "--json"],
    ],
)
def test_a_command_elsewhere_says_where_it_looked_and_creates_nothing(
    tmp_path: Path, args: list[str]
):
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"no database at {tmp_path.resolve() / 'var' / 'newsletter.db'}" in line
    assert "--data-dir" in line and "NEWSLETTER_DATA_DIR" in line
    assert "no such table" not in line
    assert tree(tmp_path) == []  # no ./var, no secret files


def test_an_explicit_data_dir_without_data_is_named_and_left_alone(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("lists", "list", cwd=tmp_path, NEWSLETTER_DATA_DIR=str(empty))
    assert result.returncode == 1
    assert f"no database at {empty.resolve() / 'newsletter.db'}" in result.stderr
    assert tree(tmp_path) == ["empty"]


def test_data_dir_option_points_every_command_at_the_data(tmp_path: Path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    elsewhere.mkdir()
    made = cli("--data-dir", str(data), "db", "upgrade", cwd=elsewhere)
    assert made.returncode == 0, made.stderr
    assert (data / "newsletter.db").exists()
    created = cli(
        "--data-dir", str(data), "lists", "create", "morning", "--name", "M", cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    listed = cli("--data-dir", "data", "lists", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0 and '"morning"' in listed.stdout
    by_env = cli("lists", "list", "--json", cwd=elsewhere, NEWSLETTER_DATA_DIR=str(data))
    assert by_env.returncode == 0 and '"morning"' in by_env.stdout
    assert tree(elsewhere) == []


# 12 and 17. `newsletter up`: its own lines, secrets before the banner, logs in files ------


@pytest.fixture(params=[[]])
def started(tmp_path: Path, request: pytest.FixtureRequest):
    """`newsletter up` on a fresh data dir; yields the process, its URL and the data dir."""
    import psutil

    port, smtp, data = free_port(), free_port(), tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "up", "--port", str(port), *request.param],
        env=clean_env(
            NEWSLETTER_DATA_DIR=str(data), NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{smtp}"
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc, f"http://127.0.0.1:{port}", data
    if proc.poll() is None:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for member in family:
            member.kill()
        psutil.wait_procs(family, timeout=10)


def read_banner(proc: subprocess.Popen[str]) -> list[str]:
    lines: list[str] = []
    while not lines or "Press Ctrl-C" not in lines[-1]:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, "".join(lines)
        lines.append(line)
    return lines


def wait_for(check, timeout: float = 60.0):
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


def stop(proc: subprocess.Popen[str]) -> str:
    import signal

    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    return proc.stdout.read() if proc.stdout else ""


def test_up_writes_the_admin_token_before_the_banner_points_at_it(started):
    import httpx

    proc, base, data = started
    banner = "".join(read_banner(proc))
    assert "token in " in banner and "admin_token" in banner
    # Nothing has asked the web app anything yet: the file is there because `up` made it.
    token = (data / "admin_token").read_text().strip()
    assert token and (data / "secret_key").exists()
    lists = wait_for(
        lambda: (
            (
                r := httpx.get(f"{base}/api/lists", headers={"Authorization": f"Bearer {token}"})
            ).status_code
            == 200
            and r
        )
    )
    assert lists.json()[0]["slug"] == "news"
    stop(proc)


def test_up_shows_its_own_lines_and_keeps_the_services_logs_in_files(started):
    proc, base, data = started
    banner = read_banner(proc)
    assert banner[0].startswith("newsletter is up"), banner
    logs = data / "logs"
    assert any(str(logs) in line and "worker.log" in line for line in banner), banner
    # The worker's Celery banner is written once it has started: in its log, not here.
    wait_for(lambda: "celery@" in (logs / "worker.log").read_text(errors="replace"))
    rest = stop(proc)
    output = "".join(banner) + rest
    assert "celery@" not in output and "WARNING" not in output
    assert rest.strip().splitlines() == ["stopped"]
    for name in ("web", "worker", "beat"):
        assert (logs / f"{name}.log").is_file(), name


@pytest.mark.parametrize("started", [["--verbose"]], indirect=True)
def test_up_verbose_shows_the_services_logs_here(started):
    proc, base, data = started
    banner = read_banner(proc)
    assert banner[0].startswith("newsletter is up") and "logs " not in "".join(banner)
    seen = "".join(banner)
    while "celery@" not in seen:  # the worker's banner, on this terminal as before
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, seen
        seen += line
    stop(proc)
    assert not (data / "logs").exists()
