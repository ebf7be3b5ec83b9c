#!/usr/bin/env python3
"""Benchmark POST /subscribe: one web process, a load client on loopback, fixed concurrency.

Prints requests/s and p50/p99 latency for SQLite (+ the file-system broker) and for
PostgreSQL (+ Redis). Each request is a real form submission with the CSRF token, a new
address, a database write and a confirmation task put on the queue (no worker runs, so
the figure is the web tier's alone).

    python bench/subscribe.py [--requests 3000] [--concurrency 32] [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import free_port  # noqa: E402

PG_ADMIN = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS = ""  # a redis-server of the benchmark's own (own_redis.py), set before main()


def newsletter(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "newsletter", *args], env=env, check=True, capture_output=True
    )


async def load(base: str, requests: int, concurrency: int) -> tuple[list[float], int]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        form = await client.get("/subscribe")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        latencies: list[float] = []
        errors = 0
        counter = iter(range(requests))
        run = uuid.uuid4().hex[:8]

        async def one_client() -> None:
            nonlocal errors
            for i in counter:
                data = {
                    "email": f"reader{i}.{run}@example.org",
                    "name": f"Reader {i}",
                    "list": "bench",
                    "csrf_token": token,
                }
                start = time.perf_counter()
                response = await client.post("/subscribe", data=data)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors += 1

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return latencies, errors


def run_backend(name: str, requests: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        port = free_port()
        env.update(
            NEWSLETTER_DATA_DIR=tmp,
            NEWSLETTER_BASE_URL=f"http://127.0.0.1:{port}",
            NEWSLETTER_SUBSCRIBE_LIMIT_IP="100000000",
        )
        dbname = None
        if name == "postgres":
            import psycopg

            dbname = f"nl_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{dbname}"')
            base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            env["NEWSLETTER_DATABASE_URL"] = f"{base}/{dbname}"
            env["NEWSLETTER_BROKER_URL"] = REDIS
        newsletter(env, "db", "upgrade")
        newsletter(env, "lists", "create", "bench", "--name", "Bench")
        web = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "web", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(f"{base_url}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            asyncio.run(load(base_url, min(200, requests), concurrency))  # warm-up
            start = time.perf_counter()
            latencies, errors = asyncio.run(load(base_url, requests, concurrency))
            elapsed = time.perf_counter() - start
        finally:
            web.terminate()
            web.wait()
            if dbname:
                import psycopg

                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        label = "SQLite + file broker" if name == "sqlite" else "PostgreSQL + Redis"
        print(
            f"{label:22} {requests / elapsed:7.0f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms"
            f"   ({requests} requests, concurrency {concurrency}, errors {errors})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    for name in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        run_backend(name, args.requests, args.concurrency)


if __name__ == "__main__":
    from own_redis import own_redis

    with own_redis() as REDIS:
        main()
