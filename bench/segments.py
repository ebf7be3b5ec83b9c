"""Benchmark: counting segments of a list of 1,000,000 subscribers on PostgreSQL.

Seeds (or reuses, when it is there from an earlier run) a database of N subscribers with
realistic attributes (a city among 50, a plan, an age, a language, a signup date spread
over two years), all confirmed on one list, then times `segments count` (the domain's
count_readers, the query the CLI, the API and the console run) for representative
segments: the median of --runs runs each, with the load average. The target is 200 ms.

    python bench/segments.py [--db nl_bench_segments] [--subscribers 1000000] [--runs 7]
                             [--drop]

The database is kept for the next run (seeding a million rows takes a minute or two);
--drop removes it at the end, and only a database this benchmark seeded (it carries the
list `segbench`) is ever reused or dropped: another database of that name is left alone
and the run stops.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import psycopg

PG = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
LIST = "segbench"
CITIES = [
    "Kyiv", "Lviv", "Odesa", "Kharkiv", "Dnipro", "Zaporizhzhia", "Vinnytsia", "Poltava",
    "Chernihiv", "Sumy", "Rivne", "Lutsk", "Ternopil", "Uzhhorod", "Ivano-Frankivsk",
    "Chernivtsi", "Khmelnytskyi", "Zhytomyr", "Cherkasy", "Kropyvnytskyi", "Mykolaiv",
    "Kherson", "Warsaw", "Krakow", "Gdansk", "Wroclaw", "Berlin", "Hamburg", "Munich",
    "Vienna", "Prague", "Brno", "Bratislava", "Budapest", "Bucharest", "Chisinau", "Vilnius",
    "Riga", "Tallinn", "Helsinki", "Stockholm", "Oslo", "Copenhagen", "Amsterdam", "Brussels",
    "Paris", "London", "Dublin", "Madrid", "Lisbon",
]  # fmt: skip
SEGMENTS = {
    "one-city": 'attributes.city = "Kyiv"',
    "cities-and-plan": 'attributes.city in ("Kyiv", "Lviv", "Odesa") and attributes.plan = "pro"',
    "age-range": "attributes.age >= 30 and attributes.age < 40",
    "language-recent": 'language = "uk" and signed_up >= 90 days ago',
}


def _url(name: str, driver: str = "postgresql") -> str:
    return PG.rsplit("/", 1)[0].replace("postgresql://", f"{driver}://") + f"/{name}"


def ensure(name: str, n: int) -> bool:
    """Create and seed the database, or reuse ours; True when this run created it."""
    admin = psycopg.connect(PG, autocommit=True)
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists:
        with psycopg.connect(_url(name)) as conn:
            try:
                found = conn.execute(
                    "SELECT count(*) FROM subscriptions s JOIN lists l ON l.id = s.list_id "
                    "WHERE l.slug = %s",
                    (LIST,),
                ).fetchone()
            except psycopg.Error:
                found = None
        if not found or not found[0]:
            sys.exit(f"database {name} exists and was not seeded by this benchmark: left alone")
        if found[0] != n:
            sys.exit(f"database {name} holds {found[0]:,} readers, not {n:,}: use --db another")
        print(f"reusing {name}: {found[0]:,} readers")
        return False
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        _seed(name, n)
    except BaseException:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # ours, half seeded
        raise
    return True


def _seed(name: str, n: int) -> None:
    os.environ["NEWSLETTER_DATABASE_URL"] = _url(name, "postgresql+psycopg")
    from newsletter.migrate import upgrade

    upgrade()
    t0 = time.perf_counter()
    cities = "ARRAY[" + ",".join(f"'{c}'" for c in CITIES) + "]"
    with psycopg.connect(_url(name)) as conn:
        conn.execute(
            "INSERT INTO lists (slug, name, description, timezone, created_at) "
            f"VALUES ('{LIST}', 'Segment bench', '', 'UTC', now())"
        )
        # Deterministic draws, independent per field: a hash of the row number and a salt.
        conn.execute(
            "INSERT INTO subscribers (email, name, status, bounce_score, created_at, attributes,"
            " language, timezone) "
            "SELECT 'reader' || g || '@example.org', 'Reader ' || g, 'active', 0,"
            " now() - (abs(hashtext(g || 'd')) %% 730) * interval '1 day',"
            f" jsonb_build_object('city', ({cities})[1 + abs(hashtext(g || 'c')) %% 50],"
            "   'plan', (ARRAY['free', 'free', 'free', 'pro', 'team'])"
            "      [1 + abs(hashtext(g || 'p')) %% 5],"
            "   'age', CASE WHEN g %% 10 = 0"
            "               THEN to_jsonb((18 + abs(hashtext(g || 'a')) %% 60)::text)"
            "               ELSE to_jsonb(18 + abs(hashtext(g || 'a')) %% 60) END),"
            " CASE WHEN abs(hashtext(g || 'l')) %% 3 = 0 THEN 'en' ELSE 'uk' END,"
            " (ARRAY['Europe/Kyiv', 'Europe/Warsaw', 'Europe/Berlin', 'Europe/London',"
            "        'America/New_York', NULL])[1 + abs(hashtext(g || 'z')) %% 6]"
            " FROM generate_series(1, %s) g",
            (n,),
        )
        conn.execute(
            "INSERT INTO subscriptions (list_id, subscriber_id, status, token_nonce, created_at,"
            " confirmed_at, consent_source, frequency) "
            "SELECT l.id, s.id, 'confirmed', 0, s.created_at, s.created_at, 'import', 'every'"
            f" FROM subscribers s, lists l WHERE l.slug = '{LIST}'"
        )
    with psycopg.connect(_url(name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"seeded {name}: {n:,} readers in {time.perf_counter() - t0:.1f} s")


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default="nl_bench_segments", help="Database name (kept for reuse).")
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--drop", action="store_true", help="Drop the database at the end.")
    args = ap.parse_args()
    ensure(args.db, args.subscribers)
    os.environ["NEWSLETTER_DATABASE_URL"] = _url(args.db, "postgresql+psycopg")
    os.environ.setdefault("NEWSLETTER_DATA_DIR", "/tmp/nl-bench-segments")
    from sqlalchemy import select

    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.models import MailingList, Segment
    from newsletter.segments.actions import count_readers

    settings = get_settings()
    ok = True
    try:
        with session_scope() as session:
            mlist = session.scalar(select(MailingList).where(MailingList.slug == LIST))
            assert mlist is not None
            for slug, where in SEGMENTS.items():
                segment = session.scalar(select(Segment).where(Segment.slug == f"bench-{slug}"))
                if segment is None:
                    session.add(Segment(slug=f"bench-{slug}", list_id=mlist.id, expression=where))
                else:
                    segment.expression = where
        print(f"load before: {_uptime()}")
        for slug, where in SEGMENTS.items():
            times, count = [], 0
            for _ in range(args.runs + 1):  # the first run warms the cache: not counted
                with session_scope() as session:
                    segment = session.scalar(select(Segment).where(Segment.slug == f"bench-{slug}"))
                    assert segment is not None
                    t0 = time.perf_counter()
                    count = count_readers(session, settings, segment)
                    times.append(time.perf_counter() - t0)
            median = statistics.median(times[1:]) * 1000
            ok &= median <= 200
            print(
                f"{slug:<16} {count:>9,} readers  median {median:6.1f} ms  "
                f"(min {min(times[1:]) * 1000:.1f}, max {max(times[1:]) * 1000:.1f})  {where}"
            )
        print(f"load after:  {_uptime()}")
    finally:
        from newsletter import db

        db.reset()
        if args.drop:
            # Ours either way: ensure() stops before anything if the database is not.
            admin = psycopg.connect(PG, autocommit=True)
            admin.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
            print(f"dropped {args.db}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
