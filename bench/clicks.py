#!/usr/bin/env python3
"""Benchmark: the tracked-link redirect (GET /c/{reader}/{link}) and the open pixel as a
reader's client sees them, on PostgreSQL with a sent digest of N readers.

Creates a database of its own, seeds one list with click and open tracking, one sent
digest of 10 story links and N deliveries (set-based INSERTs), starts one `newsletter web`
process as an operator would, then follows REQUESTS tracked links of distinct readers one
after another (each a person's click: verified, resolved, counted in its own transaction,
redirected) and fetches as many pixels, and prints p50 / p99 / max of the whole response
time on loopback with the load average beside them. Finally it checks that every click
was counted once.

    python bench/clicks.py [--readers 100000] [--requests 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.engagement.codes import LinkCodes, ReaderCodes  # noqa: E402
from tests.services import free_port  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET = "bench-secret-0123456789abcdef0123"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


def _times(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    name = f"nl_clicks_{uuid.uuid4().hex[:8]}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    workdir = Path(tempfile.mkdtemp(prefix="bench-clicks-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NEWSLETTER_DATA_DIR": str(workdir),
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_BASE_URL": base,
        "NEWSLETTER_SMTP_URL": "smtp://127.0.0.1:2525",
    }
    web = None
    try:
        subprocess.run(
            [sys.executable, "-m", "newsletter", "db", "upgrade"], env=env, check=True, cwd=workdir
        )
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as db:
            db.execute(
                "INSERT INTO lists (id, slug, name, description, timezone, created_at, welcome,"
                " track_clicks, track_opens, form_fields) VALUES (1, 'bench', 'Bench', '', 'UTC',"
                " now(), false, true, true, '[]')"
            )
            db.execute(
                "INSERT INTO digests (id, list_id, subject, status, html, text, story_ids, carry,"
                " ledger_complete, created_at, started_at) VALUES (1, 1, 'B', 'sent', '', '',"
                " '[]', '[]', true, now(), now() - interval '1 hour')"
            )
            for n in range(1, 11):
                db.execute(
                    "INSERT INTO digest_links (digest_id, number, url) VALUES (1, %s, %s)",
                    (n, f"https://paper.example/story-{n}"),
                )
            db.execute(
                "INSERT INTO subscribers (id, email, name, status, bounce_score, created_at,"
                " attributes) SELECT g, 'r' || g || '@example.org', '', 'active', 0, now(), '{}'"
                " FROM generate_series(1, %s) g",
                (args.readers,),
            )
            db.execute(
                "INSERT INTO deliveries (id, digest_id, subscriber_id, status, attempts,"
                " updated_at, variant) SELECT g, 1, g, 'sent', 1, now() - interval '1 hour', 0"
                " FROM generate_series(1, %s) g",
                (args.readers,),
            )
            db.execute("ANALYZE")
        web = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "web", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("web did not start")
            time.sleep(0.2)
        readers, links = ReaderCodes(SECRET), LinkCodes(SECRET)
        step = max(1, args.readers // args.requests)
        clicks: list[float] = []
        opens: list[float] = []
        with httpx.Client(headers={"User-Agent": BROWSER}) as client:
            for _ in range(20):  # warm-up: the same reader, counted too
                client.get(f"{base}/c/{readers(1)}/{links(1, 1)}")
            for i in range(args.requests):
                reader = readers(1 + (i * step) % args.readers)
                target = f"{base}/c/{reader}/{links(1, 1 + i % 10)}"
                start = time.perf_counter()
                answer = client.get(target)
                clicks.append(time.perf_counter() - start)
                assert answer.status_code == 302, answer.status_code
                start = time.perf_counter()
                answer = client.get(f"{base}/o/{reader}.gif")
                opens.append(time.perf_counter() - start)
                assert answer.status_code == 200
        load = os.getloadavg()
        with psycopg.connect(url.replace("+psycopg", "")) as db:
            counted = db.execute("SELECT count(*) FROM engagements WHERE kind = 'click'").fetchone()
        print(f"readers {args.readers:,}, requests {args.requests:,} of each (sequential)")
        print(f"click redirect: {_times(clicks)}")
        print(f"open pixel:     {_times(opens)}")
        print(f"clicks counted: {counted[0] if counted else 0} (expected {args.requests + 20})")
        print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    finally:
        if web is not None:
            web.terminate()
            web.wait(15)
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
