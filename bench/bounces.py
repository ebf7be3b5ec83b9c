"""Benchmark: DSNs processed per second through `newsletter bounce-server`.

A fresh database (SQLite file, or a new PostgreSQL database with --postgres) holds N sent
deliveries; `newsletter bounce-server` runs as its own process, as in production; C client
threads each keep one SMTP connection and send DSNs (the corpus of tests/fixtures/bounces,
round robin) as MAIL FROM:<> to each delivery's VERP address, several transactions per
connection as MTAs do. The clock runs from the first MAIL to the last 250 after DATA,
which the server answers only after the bounce is committed; every message must be
recorded. Prints per run DSNs/s, the server's CPU per DSN, the sending clients' CPU per
DSN (they share the machine with the server and PostgreSQL) and the load average, then
the medians.

--baseline REV also times the bounce-server of a git revision (the whole package as of REV,
checked out into a temporary worktree: parsing, classifying and storing all count) in the
same run, alternating with the current one so the machine's drift falls on both alike.
The database is migrated by today's code; older code only ignores the newer columns.
--processes N is passed to today's server only (default: the command's own, one per CPU
on PostgreSQL); the server's CPU counts all its processes.

    python bench/bounces.py [--messages N] [--connections C] [--runs R] [--postgres]
                            [--baseline REV] [--processes N]
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

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


@dataclass(frozen=True)
class Run:
    rate: float  # DSNs/s
    cpu_ms: float  # bounce-server CPU (user + system) per DSN
    client_ms: float  # this process's CPU per DSN: the sending side shares the machine
    load: float  # 1-minute load average when the run ended


def server_command(port: int, tree: Path | None, processes: int | None) -> list[str]:
    """`newsletter bounce-server` of today's package or of the worktree ``tree``."""
    code = "import sys; sys.argv[0] = 'newsletter'; from newsletter.cli import main; main()"
    if tree is None:
        extra = ["--processes", str(processes)] if processes else []
        return [sys.executable, "-m", "newsletter", "bounce-server", "--port", str(port), *extra]
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(tree)!r}); {code}",
        "bounce-server",
        "--port",
        str(port),
    ]


def old_tree(rev: str, workdir: Path) -> Path:
    """A detached worktree of ``rev`` (removed by :func:`drop_tree`)."""
    path = workdir / f"tree-{rev}"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), rev],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return path


def drop_tree(path: Path) -> None:
    subprocess.run(
        ["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True
    )


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live children."""
    top = psutil.Process(pid)
    total = 0.0
    for proc in [top, *top.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def wait_banner(port: int) -> None:
    """Until the server answers with its 220 greeting (a bound socket alone accepts
    connections before any server process serves it)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5):
                return
        except (OSError, smtplib.SMTPException):
            if time.monotonic() > deadline:
                raise SystemExit("bounce-server did not start") from None
            time.sleep(0.05)


def run_once(
    url: str,
    n: int,
    connections: int,
    workdir: Path,
    tree: Path | None = None,
    processes: int | None = None,
) -> Run:
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
        server_command(port, tree, processes),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_banner(port)
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
        start_cpu = tree_cpu(server.pid)  # start-up and imports are not per DSN
        start_client = time.process_time()
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        cpu_ms = (tree_cpu(server.pid) - start_cpu) * 1000 / n
        client_ms = (time.process_time() - start_client) * 1000 / n
    finally:
        server.terminate()
        server.wait(10)
    engine = engine_for(url)
    with engine.connect() as conn:
        recorded = conn.execute(select(func.count()).select_from(BounceEvent)).scalar_one()
    engine.dispose()
    if failures or recorded != n:
        raise SystemExit(f"recorded {recorded} of {n}; failures: {failures[:3]}")
    return Run(n / elapsed, cpu_ms, client_ms, os.getloadavg()[0])


def database(postgres: bool, workdir: Path) -> tuple[str, tuple[Any, str] | None]:
    """The URL of a fresh database, and for PostgreSQL the admin connection and name to
    drop it with."""
    if not postgres:
        return f"sqlite:///{workdir / 'bench.db'}", None
    import psycopg

    name = f"nl_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}", (admin, name)


def parse_cpu_ms(rounds: int = 3) -> float:
    """CPU per message of parsing and classifying the corpus alone (no SMTP, no database):
    the part of the server's CPU that storing cannot make smaller."""
    from newsletter.bounces.parse import analyse

    messages = corpus()
    rcpt = [f"bounces+1-000000000000@{DOMAIN}"]
    start = time.process_time()
    for _ in range(rounds):
        for raw in messages:
            analyse(raw, rcpt)
    return (time.process_time() - start) * 1000 / (rounds * len(messages))


def measure(args: argparse.Namespace, tree: Path | None) -> Run:
    with tempfile.TemporaryDirectory(prefix="nl-bench-bounces-") as tmp:
        url, pg = database(args.postgres, Path(tmp))
        try:
            processes = args.processes if tree is None else None
            return run_once(url, args.messages, args.connections, Path(tmp), tree, processes)
        finally:
            if pg is not None:
                admin, name = pg
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--baseline", metavar="REV", help="also time server.py as of REV")
    parser.add_argument("--processes", type=int, help="today's server processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nl-bench-old-") as keep:
        variants: dict[str, Path | None] = {}
        if args.baseline:
            variants[f"at {args.baseline}"] = old_tree(args.baseline, Path(keep))
        variants["now"] = None
        runs: dict[str, list[Run]] = {label: [] for label in variants}
        try:
            _rounds(args, variants, runs)
        finally:
            for tree in variants.values():
                if tree is not None:
                    drop_tree(tree)
    _summary(args, runs)


def _rounds(
    args: argparse.Namespace, variants: dict[str, Path | None], runs: dict[str, list[Run]]
) -> None:
    for number in range(1, args.runs + 1):
        for label, tree in variants.items():
            run = measure(args, tree)
            runs[label].append(run)
            print(
                f"run {number} {label:>12}: {args.messages} DSNs in "
                f"{args.messages / run.rate:.2f}s = {run.rate:.0f}/s, "
                f"server CPU {run.cpu_ms:.2f} ms/DSN, client CPU {run.client_ms:.2f} ms/DSN, "
                f"load {run.load:.2f}",
                flush=True,
            )


def _summary(args: argparse.Namespace, runs: dict[str, list[Run]]) -> None:
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"medians of {args.runs} runs ({backend}, {args.connections} connections, "
        f"{args.messages} messages; {os.cpu_count()} CPUs; "
        f"processes now: {args.processes or 'the default'}):"
    )
    medians = {label: statistics.median(r.rate for r in got) for label, got in runs.items()}
    print(f"  parsing alone: {parse_cpu_ms():.2f} ms CPU per message (in this process)")
    for label, got in runs.items():
        ratio = f" ({medians[label] / min(medians.values()):.2f}x)" if len(runs) > 1 else ""
        print(
            f"  {label:>12}: {medians[label]:.0f} DSNs/s{ratio}, "
            f"server CPU {statistics.median(r.cpu_ms for r in got):.2f} ms/DSN, "
            f"client CPU {statistics.median(r.client_ms for r in got):.2f} ms/DSN, "
            f"load {statistics.median(r.load for r in got):.2f}"
        )


if __name__ == "__main__":
    main()
