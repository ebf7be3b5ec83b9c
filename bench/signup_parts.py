"""Benchmark: the parts of a sign-up's cost changed for the front door, each beside the
library code it replaces, in one process and one run, alternating per round.

- confirmation message: the rendered confirmation (English, a reader "Reader N"; and
  Ukrainian, "Олена N", whose To header still goes through the email package) written as
  bytes by `message_bytes` against the email package (`build_message(...).as_bytes()`,
  the reference it must equal byte for byte); milliseconds of CPU per mail.
- confirmation HTML: `render_email("confirm", …)` (premailer once per page shape, the
  reader's strings after) against premailer on every mail (render, then `inline_css`);
  milliseconds of CPU per mail.
- enqueue on redis://: Celery's `send_task` through workers/redisbroker.py against kombu's
  own Redis transport (a redis-server of the bench's own); microseconds of CPU per task.
- file broker take: a backlog of --backlog messages taken one by one through
  workers/fsbroker.py against kombu's file-system transport; messages/s.

    python bench/signup_parts.py [--rounds 5] [--backlog 3000]

Prints every round, then the medians with the load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from kombu import Connection  # noqa: E402
from kombu.transport import TRANSPORT_ALIASES  # noqa: E402
from kombu.transport import filesystem as kombu_filesystem  # noqa: E402
from own_redis import own_redis  # noqa: E402

import workers.app  # noqa: E402,F401 - installs the project's transports
from newsletter.mail.message import address, build_message, message_bytes  # noqa: E402
from newsletter.mail.render import inline_css, render_email  # noqa: E402
from workers import fsbroker  # noqa: E402

CONTEXT = {
    "email": "reader@example.org",
    "list_name": "Morning Briefing",
    "confirm_url": "https://news.example.org/confirm/AbCdEf0123456789",
    "requested_at": "1 December 2026, 10:00 UTC",
    "requested_ip": "203.0.113.9",
    "ttl_days": 7,
    "postal_address": "The Newsroom, 1 Example Street",
    "preferences_url": None,
}


def cpu_per_call(fn: Callable[[int], object], n: int) -> float:
    started = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - started) / n


def render_ms(fast: bool, n: int = 300) -> float:
    def one(i: int) -> object:
        context = CONTEXT | {"name": f"Reader {i}"}
        if fast:
            return render_email("confirm", context).html
        return inline_css(render_email("confirm", context, inline=False).html)

    return cpu_per_call(one, n) * 1000


def message_ms(fast: bool, language: str, n: int = 300) -> float:
    name = "Олена" if language == "uk" else "Reader"
    rendered = render_email("confirm", CONTEXT | {"name": name}, language=language)
    sender = address("news@example.org", "The Newsroom")

    def one(i: int) -> object:
        mail = {
            "sender": sender,
            "to": address(f"reader{i}@example.org", f"{name} {i}"),
            "subject": rendered.subject,
            "text": rendered.text,
            "html": rendered.html,
            "headers": {"Auto-Submitted": "auto-generated"},
        }
        return message_bytes(**mail) if fast else build_message(**mail).as_bytes()

    return cpu_per_call(one, n) * 1000


def enqueue_us(redis_url: str, transport: str) -> float:
    """Measured in a process of its own: kombu resolves a URL's transport once per process."""
    out = subprocess.run(
        [sys.executable, __file__, "--enqueue", transport, redis_url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def _enqueue_here(transport: str, redis_url: str, n: int = 2000) -> None:
    from newsletter.config import Settings
    from workers.app import make_celery

    TRANSPORT_ALIASES["redis"] = transport
    app = make_celery(Settings(broker_url=redis_url, data_dir=Path(tempfile.mkdtemp())))

    def one(i: int) -> object:
        return app.send_task("workers.tasks.send_confirmation", args=(i,))

    cpu_per_call(one, 100)  # connections and channels made
    taken = cpu_per_call(one, n) * 1e6
    with app.producer_or_acquire() as producer:
        assert type(producer.channel).__module__ == transport.split(":")[0], producer.channel
    print(taken)


def take_rate(transport: type, backlog: int) -> float:
    folder = tempfile.mkdtemp(prefix="nl-bench-fs-")
    options = {
        "data_folder_in": folder,
        "data_folder_out": folder,
        "control_folder": os.path.join(folder, "control"),  # not the working directory
    }
    with Connection(transport=transport, transport_options=options) as conn:
        # A queue name of its own: kombu remembers declared exchanges per process, across
        # folders, and would route the second transport's messages to the first's table.
        queue = conn.SimpleQueue(f"bench{uuid.uuid4().hex[:8]}")
        for i in range(backlog):
            queue.put({"n": i})
        started = time.perf_counter()
        for _ in range(backlog):
            queue.get(timeout=5).ack()
        elapsed = time.perf_counter() - started
        queue.close()
    shutil.rmtree(folder, ignore_errors=True)
    return backlog / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backlog", type=int, default=3000)
    parser.add_argument("--enqueue", nargs=2, metavar=("TRANSPORT", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.enqueue:
        _enqueue_here(*args.enqueue)
        return
    figures: dict[str, list[float]] = {}
    render_ms(True, 20)  # templates compiled, premailer imported
    message_ms(True, "uk", 20)
    with own_redis() as redis_url:
        for r in range(1, args.rounds + 1):
            row = {
                "confirmation message, email package (ms CPU)": message_ms(False, "en"),
                "confirmation message, message_bytes (ms CPU)": message_ms(True, "en"),
                "Ukrainian confirmation, email package (ms CPU)": message_ms(False, "uk"),
                "Ukrainian confirmation, message_bytes (ms CPU)": message_ms(True, "uk"),
                "confirmation HTML, premailer per mail (ms CPU)": render_ms(False),
                "confirmation HTML, once per shape (ms CPU)": render_ms(True),
                "enqueue, kombu's redis (us CPU)": enqueue_us(
                    redis_url, "kombu.transport.redis:Transport"
                ),
                "enqueue, ours (us CPU)": enqueue_us(redis_url, "workers.redisbroker:Transport"),
                "file broker take, kombu's (msg/s)": take_rate(
                    kombu_filesystem.Transport, args.backlog
                ),
                "file broker take, ours (msg/s)": take_rate(fsbroker.Transport, args.backlog),
            }
            print(f"round {r}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
            for key, value in row.items():
                figures.setdefault(key, []).append(value)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nmedians of {args.rounds} rounds (backlog {args.backlog}; load {load}):")
    for key, values in figures.items():
        print(f"  {key:50} {statistics.median(values):10.2f}")


if __name__ == "__main__":
    main()
