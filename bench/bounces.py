"""Benchmark: DSNs processed per second through `newsletter bounce-server`.

A fresh database (SQLite file, or a new PostgreSQL database with --postgres) holds N sent
deliveries; `newsletter bounce-server` runs as its own process, as in production; C client
threads each keep one SMTP connection and send DSNs (the corpus of tests/fixtures/bounces,
round robin) as MAIL FROM:<> to each delivery's VERP address, several transactions per
connection as MTAs do. The clock runs from the first MAIL to the last 250 after DATA,
which the server answers only after the bounce is committed; every message must be
recorded. Prints DSNs/s per run and the median.

    python bench/bounces.py [--messages N] [--connections C] [--runs R] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
FIXTURES = ROOT / "tests" / "fixtures" / "bounces"
SECRET = "bench-secret"
DOMAIN = "bounces.example.com"


def corpus() -> list[bytes]:
    expected = json.loads((FIXTURES / "expected.json").read_text())
    return [
        re.sub(rb"\r?\n", b"\r\n", (FIXTURES / name).read_bytes())
        for name, want in sorted(expected.items())
        if want["kind"] is not None
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(url: str, n: int) -> list[int]:
    """Migrate and write one list, N subscribers and N sent deliveries; their ids."""
    from sqlalchemy import insert, select

    from newsletter.db import engine_for
    from newsletter.migrate import upgrade
    from newsletter.models import Delivery, Digest, MailingList, Subscriber

    upgrade(url)
    engine = engine_for(url)
    with engine.begin() as conn:
        list_id = conn.execute(
            insert(MailingList).values(slug="news", name="News").returning(MailingList.id)
        ).scalar_one()
        digest_id = conn.execute(
            insert(Digest)
            .values(list_id=list_id, subject="d", status="sent", html="", text="", story_ids=[])
            .returning(Digest.id)
        ).scalar_one()
        conn.execute(
            insert(Subscriber),
            [{"email": f"reader{i}@example.org", "name": ""} for i in range(n)],
        )
        subs = conn.execute(select(Subscriber.id).order_by(Subscriber.id)).scalars().all()
        conn.execute(
            insert(Delivery),
            [{"digest_id": digest_id, "subscriber_id": s, "status": "sent"} for s in subs],
        )
        ids = conn.execute(select(Delivery.id).order_by(Delivery.id)).scalars().all()
    engine.dispose()
    return list(ids)


def run_once(url: str, n: int, connections: int, workdir: Path) -> float:
    from sqlalchemy import func, select

    from newsletter.config import Settings
    from newsletter.db import engine_for
    from newsletter.mail.verp import verp_address
    from newsletter.models import BounceEvent

    ids = prepare(url, n)
    settings = Settings(secret_key=SECRET, bounce_domain=DOMAIN, data_dir=workdir)
    verps = [verp_address(i, settings) for i in ids]
    messages = corpus()
    port = free_port()
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_BOUNCE_DOMAIN": DOMAIN,
        "NEWSLETTER_DATA_DIR": str(workdir),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "bounce-server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("bounce-server did not start") from None
                time.sleep(0.05)
        failures: list[str] = []

        def client(part: list[int]) -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                for k in part:
                    try:
                        smtp.sendmail("", [verps[k]], messages[k % len(messages)])
                    except smtplib.SMTPException as exc:
                        failures.append(f"{verps[k]}: {exc}")

        parts = [list(range(c, n, connections)) for c in range(connections)]
        threads = [threading.Thread(target=client, args=(p,)) for p in parts]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(10)
    engine = engine_for(url)
    with engine.connect() as conn:
        recorded = conn.execute(select(func.count()).select_from(BounceEvent)).scalar_one()
    engine.dispose()
    if failures or recorded != n:
        raise SystemExit(f"recorded {recorded} of {n}; failures: {failures[:3]}")
    return n / elapsed


def database(postgres: bool, workdir: Path) -> tuple[str, object]:
    if not postgres:
        return f"sqlite:///{workdir / 'bench.db'}", None
    import psycopg

    name = f"nl_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}", (admin, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    rates = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="nl-bench-bounces-") as tmp:
            url, pg = database(args.postgres, Path(tmp))
            try:
                rate = run_once(url, args.messages, args.connections, Path(tmp))
            finally:
                if pg is not None:
                    admin, name = pg  # type: ignore[misc]
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    admin.close()
        rates.append(rate)
        print(f"run {run + 1}: {args.messages} DSNs in {args.messages / rate:.2f}s = {rate:.0f}/s")
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"median {statistics.median(rates):.0f} DSNs/s through bounce-server "
        f"({backend}, {args.connections} connections, {args.messages} messages, {args.runs} runs)"
    )


if __name__ == "__main__":
    main()
