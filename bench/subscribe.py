#!/usr/bin/env python3
"""Benchmark POST /subscribe: one `newsletter web` process, a worker beside it, fixed concurrency.

Each request is the real form: the CSRF cookie and field from GET /subscribe, a new
address, a database write and a confirmation task on the queue, which a `newsletter
worker` running beside the web process turns into a mail to an SMTP catcher. For SQLite
(+ the file-system broker) and PostgreSQL (+ Redis) it prints requests/s, p50/p99, the
5xx count, the rows stored against the requests accepted, and the confirmation mails
sent (and to how many distinct addresses), as medians of the rounds with the load average.

`--baseline REV` runs that git revision's code (exported with `git archive`, same venv,
same database schema) in the same rounds, alternating with this checkout's, so the
machine's drift falls on both alike.

The load client is a few lines of raw HTTP/1.1 over keep-alive connections, not an HTTP
library: on a 2-core machine the client shares the CPU with the server, and a heavy one
would measure itself.

    python bench/subscribe.py [--requests 3000] [--concurrency 32] [--rounds 3]
                              [--backend sqlite|postgres|both] [--baseline REV]
                              [--web-workers N]

`--web-workers N` starts `newsletter web --workers N` (PostgreSQL + Redis only: more web
processes share their rate limits through Redis); its CPU is that of all N processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
from revisions import export  # bench/revisions.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import free_port  # noqa: E402

PG_ADMIN = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS = ""  # a redis-server of the benchmark's own (own_redis.py), set before main()


@dataclass
class Result:
    rps: float
    p50: float
    p99: float
    server_errors: int
    accepted: int
    rows: int
    mails: int
    recipients: int
    load: float
    web_cpu_ms: float  # the web process's CPU per measured request
    worker_cpu_ms: float  # the worker's (all its processes) per measured request


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def newsletter(code: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        env=env,
        cwd=code,
        check=True,
        capture_output=True,
    )


def service(code: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args],
        env=env,
        cwd=code,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def load(
    port: int, cookie: str, token: str, requests: int, concurrency: int
) -> tuple[list[float], dict[int, int]]:
    """Post `requests` sign-ups over `concurrency` keep-alive connections."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))
    run = uuid.uuid4().hex[:8]

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                body = urlencode(
                    {
                        "email": f"reader{i}.{run}@example.org",
                        "name": f"Reader {i}",
                        "list": "bench",
                        "csrf_token": token,
                    }
                ).encode()
                head = (
                    f"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Cookie: nl_csrf={cookie}\r\nUser-Agent: bench/subscribe\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                start = time.perf_counter()
                writer.write(head + body)
                headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in headers.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                status = int(headers.split(b" ", 2)[1])
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return latencies, statuses


@contextmanager
def database(name: str, env: dict[str, str], code: Path, redis_db: int) -> Iterator[None]:
    dbname = None
    if name == "postgres":
        import psycopg

        dbname = f"nl_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{dbname}"')
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        env["NEWSLETTER_DATABASE_URL"] = f"{base}/{dbname}"
        env["NEWSLETTER_BROKER_URL"] = f"{REDIS.rsplit('/', 1)[0]}/{redis_db}"
    try:
        newsletter(ROOT, env, "db", "upgrade")  # this checkout's schema serves both versions
        newsletter(code, env, "lists", "create", "bench", "--name", "Bench")
        yield
    finally:
        if dbname:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def stored_rows(env: dict[str, str]) -> int:
    from sqlalchemy import create_engine, text

    url = (
        env.get("NEWSLETTER_DATABASE_URL")
        or f"sqlite:///{env['NEWSLETTER_DATA_DIR']}/newsletter.db"
    )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM subscriptions")).scalar_one())
    finally:
        engine.dispose()


def caught(outbox: Path) -> tuple[int, int]:
    """Mails in the catcher's Maildir, and the distinct addresses they went to."""
    files = [
        p for sub in ("new", "cur") if (outbox / sub).is_dir() for p in (outbox / sub).iterdir()
    ]
    to: set[bytes] = set()
    for path in files:
        for line in path.read_bytes().split(b"\r\n", 3)[:3]:
            if line.startswith(b"X-Envelope-To:"):
                to.add(line)
    return len(files), len(to)


def one_run(
    name: str, code: Path, requests: int, concurrency: int, redis_db: int, web_workers: int = 1
) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        port, smtp_port = free_port(), free_port()
        env.update(
            PYTHONPATH=str(code),
            NEWSLETTER_DATA_DIR=tmp,
            NEWSLETTER_BASE_URL=f"http://127.0.0.1:{port}",
            NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
            NEWSLETTER_SUBSCRIBE_LIMIT_IP="100000000",
        )
        with database(name, env, code, redis_db):
            procs = [
                service(code, env, "catcher", "--port", str(smtp_port)),
                service(code, env, "worker"),
                service(code, env, "web", "--port", str(port), "--workers", str(web_workers)),
            ]
            try:
                base_url = f"http://127.0.0.1:{port}"
                for _ in range(200):
                    try:
                        if httpx.get(f"{base_url}/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                form = httpx.get(f"{base_url}/subscribe")
                cookie = form.cookies["nl_csrf"]
                token = cookie  # double submit: the field carries the cookie's value
                warm, warm_statuses = asyncio.run(
                    load(port, cookie, token, min(200, requests), concurrency)
                )
                load_avg = os.getloadavg()[0]
                web_cpu, worker_cpu = cpu_seconds(procs[2].pid), cpu_seconds(procs[1].pid)
                start = time.perf_counter()
                latencies, statuses = asyncio.run(load(port, cookie, token, requests, concurrency))
                elapsed = time.perf_counter() - start
                web_cpu = cpu_seconds(procs[2].pid) - web_cpu
                worker_cpu = cpu_seconds(procs[1].pid) - worker_cpu
                accepted = statuses.get(200, 0) + warm_statuses.get(200, 0)
                outbox = Path(tmp) / "outbox"
                deadline = time.monotonic() + 120
                while caught(outbox)[0] < accepted and time.monotonic() < deadline:
                    time.sleep(0.5)
                time.sleep(1)  # a duplicate would arrive after the last expected mail
                mails, recipients = caught(outbox)
                rows = stored_rows(env)
            finally:
                for proc in reversed(procs):
                    proc.terminate()
                for proc in procs:
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    latencies.sort()
    server_errors = sum(n for s, n in statuses.items() if s >= 500)
    server_errors += sum(n for s, n in warm_statuses.items() if s >= 500)
    return Result(
        rps=requests / elapsed,
        p50=statistics.median(latencies) * 1000,
        p99=latencies[int(len(latencies) * 0.99) - 1] * 1000,
        server_errors=server_errors,
        accepted=accepted,
        rows=rows,
        mails=mails,
        recipients=recipients,
        load=load_avg,
        web_cpu_ms=web_cpu / requests * 1000,
        worker_cpu_ms=worker_cpu / requests * 1000,
    )


def report(label: str, runs: list[Result]) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    print(
        f"  {label:10} {med([r.rps for r in runs]):6.0f} req/s"
        f"   p50 {med([r.p50 for r in runs]):6.1f} ms   p99 {med([r.p99 for r in runs]):6.1f} ms"
        f"   5xx {sum(r.server_errors for r in runs)}"
        f"   rows/accepted {sum(r.rows for r in runs)}/{sum(r.accepted for r in runs)}"
        f"   mails {sum(r.mails for r in runs)} to {sum(r.recipients for r in runs)} addresses"
        f"   CPU/request web {med([r.web_cpu_ms for r in runs]):.2f} ms"
        f" worker {med([r.worker_cpu_ms for r in runs]):.2f} ms"
        f"   load {med([r.load for r in runs]):.2f}"
        f"   (req/s per round: {', '.join(f'{r.rps:.0f}' for r in runs)})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--baseline", metavar="REV", help="also run this git revision's code")
    parser.add_argument("--web-workers", type=int, default=1, metavar="N", help="web processes")
    args = parser.parse_args()
    if args.web_workers < 1 or (args.web_workers > 1 and args.backend != "postgres"):
        parser.error("--web-workers above 1 needs --backend postgres (Redis shares the limits)")
    with tempfile.TemporaryDirectory() as old_tmp:
        versions = {"this": ROOT}
        if args.baseline:
            versions = {args.baseline[:10]: export(args.baseline, Path(old_tmp)), **versions}
        for name in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
            label = "SQLite + file broker" if name == "sqlite" else "PostgreSQL + Redis"
            print(
                f"{label}: {args.requests} requests, concurrency {args.concurrency},"
                f" medians of {args.rounds} rounds, {args.web_workers} web process(es),"
                " a worker beside",
                flush=True,
            )
            runs: dict[str, list[Result]] = {v: [] for v in versions}
            redis_db = 0
            for _ in range(args.rounds):
                for version, code in versions.items():
                    redis_db = (redis_db + 1) % 16
                    runs[version].append(
                        one_run(
                            name, code, args.requests, args.concurrency, redis_db, args.web_workers
                        )
                    )
            for version, results in runs.items():
                report(version, results)


if __name__ == "__main__":
    from own_redis import own_redis

    with own_redis() as REDIS:
        main()
