"""Benchmark: a 12-story digest to N confirmed subscribers through real Celery workers.

PostgreSQL (a fresh database), Redis as broker and journal (a redis-server of the bench's
own), `newsletter worker` processes, and Postfix's smtp-sink as the receiving server (an
aiosmtpd sink tops out below the target here). Every configuration runs in each round,
beside the C ceiling of the same round (smtp-source -> smtp-sink, 8 sessions, the same
message size), so the machine's drift cancels; the medians over rounds end the output.

    python bench/send.py [--subscribers N] [--workers W] [--threads T] [--dkim [off|rsa|both]]
                         [--rtt-ms MS] [--rounds R] [--audience]

For each send: emails/s from "send" to the last message the sink accepted (and as a
fraction of the ceiling), the time to the first accepted message, CPU seconds per process
(each worker process with its pool children, PostgreSQL: the backends of the bench's
database, and apart the shared checkpointer/bgwriter/walwriter; Redis, the sink, the
proxy, and the sender: bench/starter.py, a warm project process that starts each send as
the web console does) and the peak PSS summed over every project process (the workers
and their children, and the sender).

--rtt-ms 20: every configuration also runs with the sink 20 ms away, through
bench/rtt_proxy.py (10 ms each way on the byte stream). Checked in the same run: an SMTP
NOOP round trip through it, and the C ceiling through it with 50 sessions and the
proxy's CPU, which must be far above what the project sends.

--audience: after each plain send, a second digest goes with the same workers to a
segment that selects everyone (`attributes.city != "Atlantis"`, so both move N messages)
at the readers' local time with every zone due already (the period two days ago).

Needs Postfix's smtp-sink and smtp-source (Debian: apt-get install postfix).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
from rtt_proxy import noop_rtt, summary

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = ""  # a redis-server of the benchmark's own (own_redis.py), set before main()
PARAGRAPH = (
    "Residents who stayed through the winter describe the shelling in the eastern districts, "
    "the queues for water at the school, and volunteers who drive in bread every morning. "
)


class Sink:
    """smtp-sink with its running counter read from stdout."""

    def __init__(self, port: int) -> None:
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        # A terminal for stdout: smtp-sink only flushes its counter promptly to a tty.
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [exe, "-c", "-u", "nobody", f"127.0.0.1:{port}", "2048"],
            stdout=slave,
            stderr=subprocess.DEVNULL,
        )
        os.close(slave)
        self.count = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter()
            buf = (buf + chunk)[-200:]
            found = re.findall(rb"mesg=(\d+)", buf)
            if found:
                count = int(found[-1])
                if count > self.count:
                    if self.first_at is None:
                        self.first_at = now
                    self.count, self.last_at = count, now

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ZONES = ["Europe/Kyiv", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Pacific/Kiritimati"]
CITIES = ["Kyiv", "Lviv", "Odesa", "Kharkiv", "Dnipro"]


def prepare(db_url: str, n: int, audience: bool = False) -> tuple[int, int]:
    """Schema, N confirmed subscribers via COPY, 12 stories, one composed digest."""
    os.environ["NEWSLETTER_DATABASE_URL"] = db_url
    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.digests.compose import compose_digest
    from newsletter.migrate import upgrade
    from newsletter.models import MailingList, Story

    upgrade()
    plain = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        conn.execute(
            "INSERT INTO lists (slug, name, description, timezone, created_at) "
            "VALUES ('bench', 'The Bench Daily', '', 'UTC', now())"
        )
        now = datetime.now(UTC)
        columns = "email, name, status, bounce_score, created_at"
        if audience:
            columns += ", attributes, timezone"
        with conn.cursor().copy(f"COPY subscribers ({columns}) FROM STDIN") as copy:
            for i in range(n):
                row: tuple[object, ...] = (
                    f"reader{i}@example.org",
                    f"Reader {i}",
                    "active",
                    0,
                    now,
                )
                if audience:
                    zone = ZONES[i % 6] if i % 6 < 5 else None
                    row += (f'{{"city": "{CITIES[i % 5]}"}}', zone)
                copy.write_row(row)
        conn.execute(
            "INSERT INTO subscriptions (list_id, subscriber_id, status, token_nonce, created_at,"
            " consent_source) SELECT l.id, s.id, 'confirmed', 0, now(), 'import'"
            " FROM subscribers s, lists l WHERE l.slug = 'bench'"
        )
    with psycopg.connect(plain, autocommit=True) as conn:
        # As autovacuum leaves the tables a minute after a load: the planner knows the
        # list's size. Sent at once, the first chunk's query was planned for a few rows
        # and read the whole list (4 s before the first message at 1,000,000).
        conn.execute("VACUUM (ANALYZE) subscribers, subscriptions")
    with session_scope() as session:
        mlist = session.query(MailingList).filter_by(slug="bench").one()
        for i in range(12):
            session.add(
                Story(
                    slug=f"story-{i}",
                    title=f"Story {i}: life on the front line, day {i}",
                    lede=PARAGRAPH,
                    body="\n\n".join([PARAGRAPH * 3] * 4),
                    url=f"https://news.example.com/stories/story-{i}",
                    list_id=mlist.id,
                    published_at=now - timedelta(minutes=i + 1),
                )
            )
        session.flush()
        digest = compose_digest(session, get_settings(), mlist, now=now)
        assert digest is not None
        size = len(digest.html.encode()) + len(digest.text.encode())
        print(
            f"digest {digest.id}: {len(digest.story_ids)} stories, {size / 1024:.0f} KB html+text"
        )
        return digest.id, size


def profile(digest_id: int) -> int:
    """The per-message cost, by step: batches run in this process under cProfile."""
    import cProfile
    import pstats

    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.models import Digest
    from newsletter.sending.batch import run_batch
    from newsletter.sending.job import start_send

    settings = get_settings()
    with session_scope() as session:
        ranges = start_send(session, settings, session.get(Digest, digest_id))
    run_batch(settings, digest_id, *ranges[0])  # warm: template, connections
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    n = 0
    for lo, hi in ranges[1:21]:
        n += run_batch(settings, digest_id, lo, hi).sent
    prof.disable()
    took = time.perf_counter() - t0
    print(f"{n} messages in one process: {took / n * 1000:.3f} ms each (profiled)")
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    return 0


def next_digest(tag: str, segment: bool = False) -> int:
    """A new digest of 12 new stories for the next measurement (each send needs its own).

    With `segment`, it goes to a segment of everyone (`attributes.city != "Atlantis"`),
    at local time 00:00 of a period two days ago: every zone is due, so it moves the same
    N messages."""
    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.digests.compose import compose_digest
    from newsletter.models import MailingList, Segment, Story

    now = datetime.now(UTC)
    with session_scope() as session:
        mlist = session.query(MailingList).filter_by(slug="bench").one()
        segment_id = None
        mlist.local_time = None  # a plain send goes now, to everyone
        if segment:
            mlist.local_time = "00:00"
            found = session.query(Segment).filter_by(slug="bench-everyone").one_or_none()
            if found is None:
                found = Segment(
                    slug="bench-everyone",
                    list_id=mlist.id,
                    expression='attributes.city != "Atlantis"',
                )
                session.add(found)
                session.flush()
            segment_id = found.id
        for i in range(12):
            session.add(
                Story(
                    slug=f"{tag}-{i}",
                    title=f"{tag} {i}: the day after",
                    lede=PARAGRAPH,
                    body="\n\n".join([PARAGRAPH * 3] * 4),
                    url=f"https://news.example.com/stories/{tag}-{i}",
                    list_id=mlist.id,
                    published_at=now - timedelta(milliseconds=i + 1),
                )
            )
        session.flush()
        digest = compose_digest(session, get_settings(), mlist, now=now)
        assert digest is not None
        if segment:
            digest.segment_id = segment_id
            digest.period_key = f"{(now - timedelta(days=2)).date()}T00:00+0000"
        return digest.id


def start_group(cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    """A child in a process group of its own, so stop_group() ends it and its children."""
    return subprocess.Popen(cmd, start_new_session=True, **kw)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM to the child's whole group, then SIGKILL to what is left of it."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            # the leader is gone; children may linger in its group for a moment
            os.killpg(proc.pid, signal.SIGKILL)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            continue
        break


def flush_redis() -> None:
    """FLUSHDB on the benchmark's own Redis: nothing of one configuration's send (queued
    batches of a send stopped at --max-seconds) reaches the next configuration."""
    import socket

    host, port = REDIS.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), 5) as s:
        s.sendall(b"*1\r\n$7\r\nFLUSHDB\r\n")
        s.recv(64)


def pss(pid: int) -> int:
    """Proportional set size (bytes) from /proc/PID/smaps_rollup: shared pages count once
    across the processes that share them, so a sum over processes is the real memory."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu(pid: int) -> float | None:
    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return None


class Meter:
    """CPU seconds per process (deltas over a measurement) and peak summed PSS.

    `groups` name the processes to charge: a callable per group lists its pids now;
    it is polled through the measurement, so a process that appears part-way (a new
    PostgreSQL backend, a pool child) is charged from zero, and one that exits keeps its
    last reading."""

    def __init__(self, groups: dict[str, Any], project: Any) -> None:
        self.groups, self.project = groups, project
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.owner: dict[int, str] = {}
        self.peak_pss = 0
        self.peak_parts: dict[str, int] = {}

    def start(self) -> None:
        for name, pids in self.groups.items():
            for pid in pids():
                value = cpu(pid)
                if value is not None:
                    self.base[pid] = self.last[pid] = value
                    self.owner[pid] = name

    def poll(self, memory: bool = True) -> None:
        for name, pids in self.groups.items():
            for pid in pids():
                value = cpu(pid)
                if value is not None:
                    self.base.setdefault(pid, 0.0)
                    self.owner.setdefault(pid, name)
                    self.last[pid] = value
        if memory:
            parts: dict[str, int] = {}
            for name, pid in self.project():  # a worker's pool children add to its part
                parts[name] = parts.get(name, 0) + pss(pid)
            total = sum(parts.values())
            if total > self.peak_pss:
                self.peak_pss, self.peak_parts = total, parts

    def cpu_by_group(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, name in self.owner.items():
            out[name] = out.get(name, 0.0) + self.last[pid] - self.base[pid]
        return out


def measure(
    label: str,
    digest_id: int,
    args: argparse.Namespace,
    sink: Sink,
    meter: Meter,
    starter: subprocess.Popen[bytes],
) -> dict[str, Any]:
    """Start the send in the starter process (bench/starter.py) and time it to the last
    accepted message (or to --max-seconds, when the rest of the send is paused and the
    rate is over the messages accepted by then)."""
    from newsletter.db import session_scope
    from newsletter.models import Digest
    from newsletter.sending.control import operator_pause, send_status

    assert starter.stdin is not None and starter.stdout is not None
    before = sink.count
    sink.first_at = None
    meter.start()
    t0 = time.perf_counter()
    starter.stdin.write(f"{digest_id}\n".encode())
    starter.stdin.flush()
    if starter.stdout.readline().strip() != b"enqueued":
        raise SystemExit("the starter process failed; see its output above")
    t_enqueued = time.perf_counter()
    deadline = t0 + args.max_seconds
    polls = 0
    while sink.count - before < args.subscribers and time.perf_counter() < deadline:
        # The meter reads /proc and pg_stat_activity: twice a second keeps its own CPU
        # (charged to "sender") small; the rate's end comes from the sink, not from here.
        if polls % 10 == 0:
            meter.poll(memory=polls % 20 == 0)
        polls += 1
        time.sleep(0.05)
    meter.poll()
    count = sink.count - before
    elapsed = (sink.last_at or time.perf_counter()) - t0
    if count < args.subscribers:
        try:  # the rest of this send must not run on into the next configuration
            with session_scope() as session:
                operator_pause(session, digest_id)
        except Exception as exc:  # noqa: BLE001 - the workers are stopped next anyway
            print(f"  (pausing the cut send: {exc})")
    time.sleep(1.0)
    with session_scope() as session:
        st = send_status(session, session.get(Digest, digest_id))
    first = (sink.first_at - t0) if sink.first_at else float("nan")
    return {
        "label": label,
        "rate": count / elapsed if elapsed > 0 else 0.0,
        "count": count,
        "elapsed": elapsed,
        "enqueue": t_enqueued - t0,
        "first": first,
        "cpu": meter.cpu_by_group(),
        "pss": meter.peak_pss,
        "pss_parts": meter.peak_parts,
        "ledger": f"sent {st['sent']}, status {st['status']}",
        "load": os.getloadavg(),
        "complete": count == args.subscribers,
    }


def ceiling(port: int, n: int, size: int, sessions: int, sink: Sink, keep: bool = False) -> float:
    """The C to C ceiling: smtp-source's emails/s to the sink at `port` (maybe the proxy);
    `keep`: each session sends its next message on the same connection (smtp-source -d)."""
    before = sink.count
    t0 = time.perf_counter()
    subprocess.run(
        [SOURCE, *(["-d"] if keep else []), "-s", str(sessions), "-m", str(n), "-l", str(size),
         f"127.0.0.1:{port}"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=600,
    )  # fmt: skip
    deadline = time.perf_counter() + 10
    while sink.count - before < n and time.perf_counter() < deadline:
        time.sleep(0.01)
    return (sink.count - before) / ((sink.last_at or time.perf_counter()) - t0)


SOURCE = ""


def require_postfix() -> None:
    global SOURCE
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    for exe in (sink, source):
        if not os.access(exe, os.X_OK):
            raise SystemExit(
                f"{os.path.basename(exe)} not found: the benchmark needs Postfix's smtp-sink and"
                " smtp-source (Debian: apt-get install postfix; they are in /usr/sbin)"
            )
    SOURCE = source


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(rows: list[dict[str, Any]], ceilings: list[float]) -> None:
    """The medians over rounds, per configuration, beside the ceiling of the same run."""
    top = median(ceilings)
    labels = list(dict.fromkeys(r["label"] for r in rows))
    groups = sorted({g for r in rows for g in r["cpu"]})
    print("\n=== medians over rounds (each round: every configuration, then the next round)")
    width = max(14, *(len(label) for label in labels))
    print("figure".ljust(22) + "".join(label.rjust(width + 2) for label in labels))

    def line(name: str, fn: Any, fmt: str) -> None:
        cells = []
        for label in labels:
            vals = [fn(r) for r in rows if r["label"] == label]
            cells.append(format(median([v for v in vals if v == v]), fmt).rjust(width + 2))
        print(name.ljust(22) + "".join(cells))

    line("emails/s", lambda r: r["rate"], ".0f")
    line("x C ceiling", lambda r: r["rate"] / top, ".2f")
    line("first message s", lambda r: r["first"], ".3f")
    line("ledger+enqueue s", lambda r: r["enqueue"], ".2f")
    for g in groups:
        line(f"CPU s {g}", lambda r, g=g: r["cpu"].get(g, float("nan")), ".2f")
    line(
        "CPU ms/msg (no pg aux)",
        lambda r: (
            1000 * sum(v for k, v in r["cpu"].items() if k != "pg shared aux") / max(r["count"], 1)
        ),
        ".3f",
    )
    line("proxy CPU ms/msg", lambda r: 1000 * r["cpu"].get("proxy", 0) / max(r["count"], 1), ".3f")
    line("PSS MB, all project", lambda r: r["pss"] / 2**20, ".0f")
    line("load avg (1 min)", lambda r: r["load"][0], ".2f")
    print(f"C ceiling (smtp-source -s 8 -> smtp-sink): median {top:.0f} emails/s of {ceilings}")


def start_workers(
    args: argparse.Namespace, env: dict[str, str], work: Path, tag: str
) -> tuple[list[subprocess.Popen[bytes]], Path]:
    """W `newsletter worker` processes (each in a process group of its own), up and idle."""
    # Threads overlap one batch's SMTP round trips with another's work in one process;
    # a solo pool has no prefork parent, so W workers are W processes, not W+1.
    # --threads 0: no pool options, the default `newsletter worker` (prefork, a process
    # per core, forked after the send path is imported).
    pool_args = (
        []
        if args.threads == 0
        else ["--pool", "solo"]
        if args.threads == 1
        else ["--pool", "threads", "--concurrency", str(args.threads)]
    )
    path = work / f"worker-{tag}.log"
    log = open(path, "wb")  # noqa: SIM115
    pool = [
        start_group(
            [sys.executable, "-m", "newsletter", "worker", *pool_args, "--loglevel", "INFO"],
            env=env,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(args.workers)
    ]
    log.close()
    # Up and idle before "send": each logs "ready." once its start-up is over.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if path.read_text(errors="replace").count(" ready.") >= args.workers:
            break
        if any(w.poll() is not None for w in pool):
            raise SystemExit(f"a worker exited at start-up; see {path}")
        time.sleep(0.1)
    time.sleep(0.5)
    return pool, path


def tree(pid: int) -> list[int]:
    try:
        proc = psutil.Process(pid)
        return [pid, *(c.pid for c in proc.children(recursive=True))]
    except psutil.Error:
        return []


def print_row(row: dict[str, Any], top: float) -> None:
    cpu_text = "  ".join(f"{k} {v:.2f}" for k, v in sorted(row["cpu"].items()))
    parts = "  ".join(f"{k} {v / 2**20:.0f}" for k, v in row["pss_parts"].items())
    load = row["load"]
    print(f"--- {row['label']}")
    print(
        f"  emails/s {row['rate']:.0f} ({row['rate'] / top:.2f} x ceiling {top:.0f})"
        f"   {row['count']} in {row['elapsed']:.2f} s{'' if row['complete'] else ' (cut)'}"
    )
    print(f"  first message {row['first']:.3f} s   ledger+enqueue {row['enqueue']:.2f} s")
    print(f"  CPU s: {cpu_text}")
    print(f"  PSS peak {row['pss'] / 2**20:.0f} MB: {parts}")
    print(f"  ledger: {row['ledger']}   load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=20_000)
    # Default: one `newsletter worker` with no options, what a deployment runs (prefork,
    # a process per core, forked after the send path is imported). Measured beside the
    # old default of 2 workers x 2 threads on 2 cores: 5-8% more emails/s on loopback and
    # 20 ms away, and 227 MB of PSS against 237-242.
    ap.add_argument("--workers", type=int, default=1, help="`newsletter worker` processes.")
    ap.add_argument(
        "--dkim",
        nargs="?",
        const="rsa",
        default="off",
        choices=["off", "rsa", "both"],
        help="Sign with RSA-2048 (--dkim), or run both ways in the same run (--dkim both).",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="0: the default prefork pool; 1: --pool solo; N: --pool threads -c N.",
    )
    ap.add_argument(
        "--batch",
        type=int,
        default=None,
        help="NEWSLETTER_SEND_BATCH_SIZE (default: the project's).",
    )
    ap.add_argument(
        "--connections",
        type=int,
        default=None,
        help="NEWSLETTER_SEND_CONNECTIONS (default: the project's, 50).",
    )
    ap.add_argument(
        "--rtt-ms",
        type=float,
        default=0.0,
        help="Also run every configuration through a proxy that puts the sink this far away.",
    )
    ap.add_argument("--rounds", type=int, default=3, help="Rounds of every configuration.")
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=300,
        help="Cut a send after this long (paused; its rate is over what was accepted).",
    )
    ap.add_argument(
        "--profile", action="store_true", help="Run the batches in this process under cProfile."
    )
    ap.add_argument(
        "--audience",
        action="store_true",
        help="Then, in the same run, a send to a segment at local time (all zones due).",
    )
    args = ap.parse_args()
    require_postfix()

    work = Path(tempfile.mkdtemp(prefix="nl-bench-"))
    port = free_port()
    name = f"nl_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    db_url = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    env = {
        "NEWSLETTER_DATA_DIR": str(work),
        "NEWSLETTER_DATABASE_URL": db_url,
        "NEWSLETTER_BROKER_URL": REDIS,
        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "NEWSLETTER_SECRET_KEY": "bench-secret-0123456789abcdef0123456789",
        "NEWSLETTER_FROM": "The Newsroom <news@example.com>",
        "NEWSLETTER_BASE_URL": "https://news.example.com",
    }
    if args.batch is not None:
        env["NEWSLETTER_SEND_BATCH_SIZE"] = str(args.batch)
    if args.connections is not None:
        env["NEWSLETTER_SEND_CONNECTIONS"] = str(args.connections)
    dkim_env: dict[str, str] = {}
    if args.dkim != "off":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (work / "dkim.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        dkim_env = {
            "NEWSLETTER_DKIM_KEY_FILE": str(work / "dkim.pem"),
            "NEWSLETTER_DKIM_SELECTOR": "bench",
        }
    os.environ.update(env)
    sink = Sink(port)
    proxy: subprocess.Popen[bytes] | None = None
    pool: list[subprocess.Popen[bytes]] = []
    starter: subprocess.Popen[bytes] | None = None
    try:
        digest_id, size = prepare(db_url, args.subscribers, args.audience)
        from newsletter import db

        db.reset()
        if args.profile:
            os.environ.update(dkim_env if args.dkim != "off" else {})
            return profile(digest_id)

        nets = [("loopback", port)]
        if args.rtt_ms:
            proxy_port = free_port()
            proxy = start_group(
                [sys.executable, str(ROOT / "bench" / "rtt_proxy.py"), "--listen",
                 f"127.0.0.1:{proxy_port}", "--to", f"127.0.0.1:{port}",
                 "--rtt-ms", str(args.rtt_ms)],
                stdout=subprocess.PIPE,
            )  # fmt: skip
            assert proxy.stdout is not None
            if proxy.stdout.readline().strip() != b"ready":
                raise SystemExit("the RTT proxy did not start")
            print(f"SMTP NOOP round trip, sink direct:    {summary(noop_rtt(port))}")
            print(f"SMTP NOOP round trip, through proxy:  {summary(noop_rtt(proxy_port))}")
            nets.append((f"rtt {args.rtt_ms:g} ms", proxy_port))
        signing = {"off": [False], "rsa": [True], "both": [False, True]}[args.dkim]

        def pg_backends() -> list[int]:
            rows = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchall()
            return [int(r[0]) for r in rows]

        def pg_aux() -> list[int]:
            rows = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE backend_type IN"
                " ('checkpointer', 'background writer', 'walwriter')"
            ).fetchall()
            return [int(r[0]) for r in rows]

        me = psutil.Process()
        redis_pids = [c.pid for c in me.children() if c.name().startswith("redis")]
        starter = start_group(
            [sys.executable, str(ROOT / "bench" / "starter.py")],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert starter.stdout is not None
        if starter.stdout.readline().strip() != b"ready":
            raise SystemExit("the starter process did not start")
        rows: list[dict[str, Any]] = []
        ceilings: list[float] = []
        fresh = [digest_id]
        for rnd in range(1, args.rounds + 1):
            top = ceiling(port, args.subscribers, size, 8, sink)
            ceilings.append(top)
            load = os.getloadavg()
            print(
                f"\n=== round {rnd}: C ceiling {top:.0f} emails/s (smtp-source -s 8 -m"
                f" {args.subscribers} -l {size}), load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
            )
            if proxy is not None:
                # smtp-source is not pipelined and reconnects per message unless -d: with
                # 20 ms it is bound by round trips, so many sessions show what the proxy
                # carries, and its CPU per message what it would cost at any rate.
                checks = min(args.subscribers, 4000)
                for sessions, keep in ((50, False), (400, True)):
                    before = cpu(proxy.pid) or 0.0
                    via = ceiling(proxy_port, checks, size, sessions, sink, keep)
                    used = (cpu(proxy.pid) or 0.0) - before
                    print(
                        f"    through the proxy, smtp-source -s {sessions}{' -d' if keep else ''}:"
                        f" {via:.0f} emails/s, proxy CPU {used:.2f} s"
                        f" ({used / (checks / via):.0%} of a core,"
                        f" {1000 * used / checks:.3f} ms per message)"
                    )
            for signed in signing:
                for net, target in nets:
                    label = f"{net}, {'rsa-2048' if signed else 'no DKIM'}"
                    tag = f"r{rnd}-{'dkim' if signed else 'plain'}-{net.split()[0]}"
                    worker_env = {
                        **os.environ,
                        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{target}",
                        **(dkim_env if signed else {}),
                    }
                    pool, _ = start_workers(args, worker_env, work, tag)
                    groups: dict[str, Any] = {
                        f"worker{i + 1}": (lambda pid=w.pid: tree(pid)) for i, w in enumerate(pool)
                    }
                    groups |= {
                        "sender": lambda: [starter.pid],
                        "pg backends": pg_backends,
                        "pg shared aux": pg_aux,
                        "redis": lambda: redis_pids,
                        "sink": lambda: [sink.proc.pid],
                    }
                    if proxy is not None:
                        groups["proxy"] = lambda: [proxy.pid] if proxy else []

                    def project(pool: list[subprocess.Popen[bytes]] = pool) -> list[Any]:
                        out: list[Any] = [("sender", starter.pid)]
                        for i, w in enumerate(pool):
                            out += [(f"worker{i + 1}", p) for p in tree(w.pid)]
                        return out

                    sends = [(label, fresh.pop() if fresh else next_digest(tag))]
                    if args.audience:
                        sends.append((label + ", segment", next_digest(tag + "-s", True)))
                    for what, digest in sends:
                        meter = Meter(groups, project)
                        row = measure(what, digest, args, sink, meter, starter)
                        rows.append(row)
                        print_row(row, top)
                    for w in pool:
                        stop_group(w)
                    pool = []
                    flush_redis()
        report(rows, ceilings)
        return 0 if all(r["complete"] for r in rows) else 1
    finally:
        for w in pool:
            stop_group(w)
        if proxy is not None:
            stop_group(proxy, 5)
        if starter is not None:
            stop_group(starter, 5)
        sink.stop()
        from newsletter import db

        db.reset()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from own_redis import own_redis

    with own_redis() as REDIS:
        sys.exit(main())
