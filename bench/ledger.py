"""Benchmark: PostgreSQL CPU per 100,000 messages sent, for a baseline revision and now.

The real sending path in one process: `start_send` and `complete_ledger` write the
ledger, then `run_batch` claims, sends (to Postfix's smtp-sink on loopback, with the
file journal) and folds every range in turn. Each round gets a fresh PostgreSQL
database (created and dropped here) with N confirmed subscribers.

PostgreSQL has no pg_stat_statements loaded here (shared_preload_libraries is empty),
so the database's CPU is read from its own processes: every connection the round
opens reports its backend pid (`pg_backend_pid()` on connect), and the backends'
utime + stime from /proc/<pid>/stat are read before and after each step. The CPU is
split by step: the ledger write (start_send + complete_ledger), `_claim` (UPDATEs and
the SELECT of the rows), `_fold` (the outcome UPDATEs) and the rest (admit, finish,
heartbeat, pool pings). Autovacuum's work on the dead row versions is not counted (it
runs in its own processes, shared with everyone on this server).

The baseline revision is checked out into a temporary git worktree; the rounds
alternate baseline / now so the machine's drift touches both. Medians of the rounds.

    python bench/ledger.py [--subscribers N] [--rounds 3] [--baseline REV] [--now REV]

`--now` measures a revision (a worktree too) instead of this checkout, whose files other
people may be editing meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# The ledger before the range fold (batch._fold folding id lists, one row per change).
BASELINE = "17b0f07"
TICK = os.sysconf("SC_CLK_TCK")
STEPS = ("write", "claim", "fold", "other")


def backend_cpu(pids: set[int]) -> float:
    """utime + stime of these PostgreSQL backends, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def child(root: str, db_url: str, n: int, port: int) -> None:
    """One round in the revision at `root`: seed, send everything, print the CPU as JSON."""
    sys.path.insert(0, root)
    os.environ["NEWSLETTER_DATABASE_URL"] = db_url
    import psycopg
    from sqlalchemy import Engine, event

    pids: set[int] = set()

    @event.listens_for(Engine, "connect")
    def _remember(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pid = int(cur.fetchone()[0])
        cur.close()
        pids.add(pid)
        _record.info["pid"] = pid

    by_statement: dict[str, list[float]] = {}
    counting = [False]

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn: Any, _c: Any, statement: str, *_: Any) -> None:
        conn.info["cpu"] = backend_cpu({conn.info.get("pid", 0)})

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn: Any, _c: Any, statement: str, *_: Any) -> None:
        if counting[0]:
            key = " ".join(statement.split())[:70]
            spent = backend_cpu({conn.info.get("pid", 0)}) - conn.info["cpu"]
            found = by_statement.setdefault(key, [0.0, 0])
            found[0] += spent
            found[1] += 1

    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.digests.compose import compose_digest
    from newsletter.migrate import upgrade
    from newsletter.models import Delivery, Digest, MailingList, Story, utcnow
    from newsletter.sending import batch, job

    upgrade()
    plain = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        conn.execute(
            "INSERT INTO lists (slug, name, description, timezone, created_at) "
            "VALUES ('bench', 'The Bench Daily', '', 'UTC', now())"
        )
        with conn.cursor().copy(
            "COPY subscribers (email, name, status, bounce_score, created_at) FROM STDIN"
        ) as copy:
            for i in range(n):
                copy.write_row((f"reader{i}@example.org", f"Reader {i}", "active", 0, utcnow()))
        conn.execute(
            "INSERT INTO subscriptions (list_id, subscriber_id, status, token_nonce, created_at,"
            " consent_source) SELECT l.id, s.id, 'confirmed', 0, now(), 'import'"
            " FROM subscribers s, lists l WHERE l.slug = 'bench'"
        )
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    settings = get_settings()
    with session_scope() as session:
        mlist = session.query(MailingList).filter_by(slug="bench").one()
        session.add(
            Story(
                slug="story",
                title="Story: life on the front line",
                lede="Residents who stayed through the winter.",
                body="Volunteers drive in bread every morning.",
                url="https://news.example.com/stories/story",
                list_id=mlist.id,
                published_at=utcnow(),
            )
        )
        session.flush()
        digest = compose_digest(session, settings, mlist, now=utcnow())
        assert digest is not None
        digest_id = digest.id

    spent = dict.fromkeys(STEPS, 0.0)

    def timed(step: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            before = backend_cpu(pids)
            try:
                return fn(*args, **kwargs)
            finally:
                spent[step] += backend_cpu(pids) - before

        return wrapper

    batch._claim = timed("claim", batch._claim)
    batch._fold = timed("fold", batch._fold)
    counting[0] = True
    start = backend_cpu(pids)
    t0 = time.perf_counter()
    before = backend_cpu(pids)
    with session_scope() as session:
        found = session.get(Digest, digest_id)
        assert found is not None
        ranges = job.start_send(session, settings, found)
    with session_scope() as session:
        ranges += job.complete_ledger(session, settings, digest_id)
    spent["write"] = backend_cpu(pids) - before
    sent = 0
    for lo, hi in ranges:
        sent += batch.run_batch(settings, digest_id, lo, hi).sent
    wall = time.perf_counter() - t0
    total = backend_cpu(pids) - start
    counting[0] = False
    spent["other"] = total - spent["write"] - spent["claim"] - spent["fold"]
    with session_scope() as session:
        from sqlalchemy import func, select

        states = dict(
            session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
        status = session.scalar(select(Digest.status).where(Digest.id == digest_id))
    print(
        json.dumps(
            {
                "total": total,
                **spent,
                "sent": sent,
                "wall": wall,
                "states": states,
                "digest": status,
                "statements": by_statement,
            }
        )
    )


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def round_(root: Path, n: int, port: int, work: Path) -> dict[str, Any]:
    import psycopg

    name = f"nl_ledger_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    db_url = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    data = work / name
    data.mkdir()
    env = os.environ | {
        "NEWSLETTER_DATA_DIR": str(data),
        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "NEWSLETTER_SECRET_KEY": "bench-secret-0123456789abcdef0123456789",
        "NEWSLETTER_FROM": "The Newsroom <news@example.com>",
        "NEWSLETTER_BASE_URL": "https://news.example.com",
    }
    env.pop("NEWSLETTER_BROKER_URL", None)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(root), db_url, str(n), str(port)],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            sys.stderr.write(out.stderr)
            raise SystemExit(f"the round in {root} failed")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    ap.add_argument(
        "--now", default=None, help="git revision or checkout to measure (default: this tree)"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nl-ledger-"))
    base = work / "baseline"
    git("worktree", "add", "--detach", str(base), args.baseline)
    now = ROOT
    if args.now is not None and Path(args.now).is_dir():
        now = Path(args.now).resolve()  # a checkout prepared by hand (an experiment)
    elif args.now is not None:
        now = work / "now"
        git("worktree", "add", "--detach", str(now), args.now)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    sink = subprocess.Popen(
        [exe, "-u", "nobody", f"127.0.0.1:{port}", "2048"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, list[dict[str, Any]]] = {"baseline": [], "now": []}
    per = 100_000 / args.subscribers
    try:
        time.sleep(0.3)
        for i in range(args.rounds):
            for label, root in (("baseline", base), ("now", now)):
                load = os.getloadavg()[0]
                r = round_(root, args.subscribers, port, work)
                r["load"] = load
                results[label].append(r)
                print(
                    f"round {i + 1} {label:8}: PostgreSQL CPU {r['total'] * per:5.2f} s/100k"
                    f" (write {r['write'] * per:.2f}, claim {r['claim'] * per:.2f},"
                    f" fold {r['fold'] * per:.2f}, other {r['other'] * per:.2f});"
                    f" {r['sent']} sent in {r['wall']:.1f} s; rows {r['states']};"
                    f" digest {r['digest']}; load {load:.2f}",
                    flush=True,
                )
    finally:
        sink.terminate()
        sink.wait()
        git("worktree", "remove", "--force", str(base))
        if now == work / "now":
            git("worktree", "remove", "--force", str(now))
        shutil.rmtree(work, ignore_errors=True)
    print("\nbackend CPU by statement (s per 100k, last round; the rest is COMMIT and pings):")
    for label, rounds in results.items():
        print(f"  {label}:")
        top = sorted(rounds[-1]["statements"].items(), key=lambda kv: -kv[1][0])
        for text, (cpu, calls) in top[:12]:
            print(f"    {cpu * per:5.2f} s {int(calls * per):7} calls  {text}")
    print(f"\nmedians of {args.rounds}, N = {args.subscribers}, PostgreSQL CPU s per 100k:")
    for label, rounds in results.items():
        med = {k: statistics.median(r[k] * per for r in rounds) for k in ("total", *STEPS)}
        loads = ", ".join(f"{r['load']:.2f}" for r in rounds)
        print(
            f"  {label:8} total {med['total']:5.2f}  write {med['write']:.2f}"
            f"  claim {med['claim']:.2f}  fold {med['fold']:.2f}  other {med['other']:.2f}"
            f"  (load {loads})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
