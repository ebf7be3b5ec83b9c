"""Benchmark: a 12-story digest to N confirmed subscribers through real Celery workers.

PostgreSQL (a fresh database), Redis as broker and journal, `newsletter worker`
processes, and Postfix's smtp-sink as the receiving server (an aiosmtpd sink tops out
below the target here). Prints emails/s from "send" to the last message accepted, the
time to the first accepted message, the workers' peak RSS (sum over all worker
processes) and the sink's count, which must equal N.

    python bench/send.py [--subscribers N] [--workers W] [--dkim] [--audience]

--audience: the readers get attributes (a city) and time zones (five zones and none),
and after today's plain send a second digest goes in the same run to a segment that
selects everyone (`attributes.city != "Atlantis"`, so both move N messages) at the
readers' local time with every zone due already (the period two days ago): the same
figures for both, side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
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


def prepare(db_url: str, n: int, audience: bool = False) -> int:
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
        return digest.id


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


def audience_digest() -> int:
    """A second digest (12 new stories) to a segment of everyone, at local time 00:00 of
    a period two days ago: every zone is due, so it moves the same N messages."""
    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.digests.compose import compose_digest
    from newsletter.models import MailingList, Segment, Story

    now = datetime.now(UTC)
    with session_scope() as session:
        mlist = session.query(MailingList).filter_by(slug="bench").one()
        mlist.local_time = "00:00"
        segment = Segment(
            slug="bench-everyone", list_id=mlist.id, expression='attributes.city != "Atlantis"'
        )
        session.add(segment)
        for i in range(12):
            session.add(
                Story(
                    slug=f"second-{i}",
                    title=f"Second {i}: the day after",
                    lede=PARAGRAPH,
                    body="\n\n".join([PARAGRAPH * 3] * 4),
                    url=f"https://news.example.com/stories/second-{i}",
                    list_id=mlist.id,
                    published_at=now - timedelta(seconds=i + 1),
                )
            )
        session.flush()
        digest = compose_digest(session, get_settings(), mlist, now=now)
        assert digest is not None
        digest.segment_id = segment.id
        digest.period_key = f"{(now - timedelta(days=2)).date()}T00:00+0000"
        return digest.id


def measure(label: str, digest_id: int, args: argparse.Namespace, sink: Sink, rss: Any) -> bool:
    """Start the send as `digest send` does and time it to the last accepted message."""
    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.models import Digest
    from newsletter.sending.job import start_send
    from workers.tasks import enqueue_ranges

    before = sink.count
    sink.first_at = None
    peak = 0
    t0 = time.perf_counter()
    with session_scope() as session:
        digest = session.get(Digest, digest_id)
        ranges = start_send(session, get_settings(), digest)
    enqueue_ranges(digest_id, ranges)
    t_enqueued = time.perf_counter()
    deadline = t0 + max(120, args.subscribers / 200)
    while sink.count - before < args.subscribers and time.perf_counter() < deadline:
        peak = max(peak, rss())
        time.sleep(0.05)
    peak = max(peak, rss())
    elapsed = (sink.last_at or time.perf_counter()) - t0
    time.sleep(1.5)
    from newsletter.sending.control import send_status

    with session_scope() as session:
        st = send_status(session, session.get(Digest, digest_id))
    count = sink.count - before
    load = os.getloadavg()
    print(f"--- {label}")
    print(f"subscribers      {args.subscribers}")
    print(f"workers          {args.workers}   dkim {'rsa-2048' if args.dkim else 'off'}")
    print(f"ledger+enqueue   {t_enqueued - t0:.2f} s")
    first = (sink.first_at - t0) if sink.first_at else float("nan")
    print(f"first accepted   {first:.3f} s after send")
    print(f"emails/s         {count / elapsed:.0f}   ({elapsed:.2f} s)")
    print(f"peak worker RSS  {peak / 2**20:.0f} MB (sum of all worker processes)")
    print(f"sink count       {count}  (ledger: sent {st['sent']}, status {st['status']})")
    print(f"load average     {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return count == args.subscribers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dkim", action="store_true", help="Sign with RSA-2048.")
    ap.add_argument("--threads", type=int, default=2, help="Batches side by side per worker.")
    ap.add_argument("--batch", type=int, default=200, help="NEWSLETTER_SEND_BATCH_SIZE.")
    ap.add_argument(
        "--profile", action="store_true", help="Run the batches in this process under cProfile."
    )
    ap.add_argument(
        "--audience",
        action="store_true",
        help="Then, in the same run, a send to a segment at local time (all zones due).",
    )
    args = ap.parse_args()

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
        "NEWSLETTER_SEND_BATCH_SIZE": str(args.batch),
    }
    if args.dkim:
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
        env |= {
            "NEWSLETTER_DKIM_KEY_FILE": str(work / "dkim.pem"),
            "NEWSLETTER_DKIM_SELECTOR": "bench",
        }
    os.environ.update(env)
    sink = Sink(port)
    pool: list[subprocess.Popen[bytes]] = []
    try:
        digest_id = prepare(db_url, args.subscribers, args.audience)
        from newsletter import db

        db.reset()
        if args.profile:
            return profile(digest_id)
        # W single-process (solo pool) workers: each is a real Celery worker consuming the
        # queue; without a prefork parent per worker the memory is W processes, not W+1.
        log = open(work / "worker.log", "wb")  # noqa: SIM115
        # Threads overlap one batch's SMTP round trips with another's work in one process.
        pool_args = (
            ["--pool", "solo"]
            if args.threads <= 1
            else ["--pool", "threads", "--concurrency", str(args.threads)]
        )
        pool = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "newsletter",
                    "worker",
                    *pool_args,
                    "--loglevel",
                    "INFO",
                ],
                env={**os.environ},
                cwd=work,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for _ in range(args.workers)
        ]
        # Workers up and idle before "send": each logs "ready." once its start-up is over.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (work / "worker.log").read_text(errors="replace").count(" ready.") >= args.workers:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        trees = [psutil.Process(w.pid) for w in pool]

        def rss() -> int:
            procs = [p for t in trees for p in (t, *t.children(recursive=True))]
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            return total

        ok = measure("plain send", digest_id, args, sink, rss)
        if args.audience:
            second = audience_digest()
            ok &= measure("segment + local time", second, args, sink, rss)
        return 0 if ok else 1
    finally:
        for w in pool:
            w.terminate()
        for w in pool:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
        sink.stop()
        from newsletter import db

        db.reset()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from own_redis import own_redis

    with own_redis() as REDIS:
        sys.exit(main())
