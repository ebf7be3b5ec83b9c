"""`newsletter up` on a fresh data dir: one command, a working form, mail in /outbox, clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.services import free_port


@pytest.fixture
def up(tmp_path: Path):
    port, smtp = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATA_DIR=str(tmp_path / "data"),
        NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{smtp}",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "up", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc, f"http://127.0.0.1:{port}"
    if proc.poll() is None:  # the test failed before Ctrl-C: leave no process behind
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for member in family:
            member.kill()
        psutil.wait_procs(family, timeout=10)


def wait_until(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_up_serves_the_form_delivers_to_the_outbox_and_stops_on_ctrl_c(up):
    proc, base = up
    banner = ""
    while "Press Ctrl-C" not in banner:
        line = proc.stdout.readline()
        assert line, banner
        banner += line
    assert f"{base}/subscribe" in banner and f"{base}/outbox" in banner

    form = wait_until(lambda: (r := httpx.get(f"{base}/subscribe")).status_code == 200 and r)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    done = httpx.post(
        f"{base}/subscribe",
        cookies=form.cookies,
        data={"email": "first@example.org", "list": "news", "csrf_token": token},
    )
    assert "Check your inbox" in done.text

    outbox = wait_until(
        lambda: "first@example.org" in (t := httpx.get(f"{base}/outbox").text) and t
    )
    key = re.search(r'href="/outbox/([^"]+)"', outbox).group(1)
    shown = httpx.get(f"{base}/outbox/{key}").text
    assert "Please confirm your subscription" in shown
    assert f"{base}/confirm/" in shown  # links follow --port when BASE_URL is unset

    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 3  # web, worker, beat
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert "stopped" in proc.stdout.read()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_up_says_which_port_is_taken_instead_of_a_traceback(tmp_path: Path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env.update(
            NEWSLETTER_DATA_DIR=str(tmp_path), NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{port}"
        )
        result = subprocess.run(
            [sys.executable, "-m", "newsletter", "up", "--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot start the SMTP catcher on port {port}" in result.stderr
    assert "Traceback" not in result.stderr
