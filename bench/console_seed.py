"""The console benchmark's data set, loaded into a freshly migrated PostgreSQL database.

1,000,000 subscribers, ~1,300,000 subscriptions over 5 lists, 200 stories, 20 digests,
~10,000,000 deliveries, 50,000 bounce events, 20,000 suppressions, 100,000 audit entries and
a few users, all as production tables (logged, with the migrations' indexes and constraints).

Speed: the rows are made by PostgreSQL itself (INSERT ... SELECT over generate_series, no row
crosses the wire), with the big tables' indexes, unique constraints and foreign keys taken off
during the load and put back afterwards (one sorted build and one validating join each,
instead of 10 million index insertions and trigger lookups). The definitions put back are the
ones read from the catalogue before the load, so a later migration's indexes come back too.
The values are deterministic (hashes of the row number), not random: two seeds are the same.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

SEED_MARK = "nl console bench seed v1"  # COMMENT ON DATABASE once the load has finished
SUBSCRIBERS = 1_000_000
_scale = [1.0]  # --scale: a small copy of the data set to try the seeding itself quickly


def n(count: int) -> int:
    return max(1, int(count * _scale[0]))


BIG_TABLES = ("subscribers", "subscriptions", "deliveries", "bounce_events", "audit_log")

# (slug, name, schedule, membership: subscriber ids with id % m == r, or id % 20 < 17 for
# the main list). ~850k + 250k + 111k + 59k + 30k = 1.3M subscriptions.
LISTS = (
    (1, "daily", "The Morning Brief", "0 6 * * *"),
    (2, "weekly", "The Week in Review", "0 8 * * 6"),
    (3, "culture", "Culture Desk", "0 9 * * 4"),
    (4, "business", "Business Briefing", "0 7 * * 1-5"),
    (5, "breaking", "Breaking News Alerts", None),
)
MEMBERSHIP = {
    1: "s.id % 20 < 17",
    2: "s.id % 4 = 1",
    3: "s.id % 9 = 2",
    4: "s.id % 17 = 3",
    5: "s.id % 33 = 4",
}
# The 20 digests: (list id, days ago started, status). The newest daily send is still going.
DIGESTS = (
    *((1, d, "sent") for d in range(11, 0, -1)),
    (1, 0, "sending"),
    *((2, d, "sent") for d in (28, 21, 14, 7)),
    (3, 20, "sent"),
    (3, 6, "sent"),
    (4, 3, "sent"),
    (5, 0, "draft"),
)

FIRST = (
    "anna james maria john olga peter sofia david elena michael laura daniel marta thomas "
    "julia lukas emma paul sara mark nina oleg irina pavel iryna taras kateryna andriy "
    "natalia dmytro yulia serhiy oksana mykola halyna ivan lea noah mia leon hannah felix "
    "lina jonas clara max amelie ben lucia hugo chloe louis ines jules camille arthur manon "
    "adam zoe omar leila yusuf amira ali fatima hassan noor chen wei li ming yuki hiro "
    "kenji aiko raj priya arjun ananya carlos lucia diego valentina mateo isabella pablo "
    "sofia joao beatriz tiago mariana erik ingrid lars astrid"
).split()
LAST = (
    "smith johnson williams brown jones garcia miller davis wilson anderson taylor thomas "
    "moore martin jackson white harris clark lewis walker hall young king wright scott "
    "green baker adams nelson hill campbell mitchell roberts carter phillips evans turner "
    "shevchenko kovalenko bondarenko tkachenko kravchenko melnyk boyko kovalchuk oliynyk "
    "shevchuk polishchuk lysenko muller schmidt schneider fischer weber meyer wagner becker "
    "schulz hoffmann martin bernard dubois durand leroy moreau simon laurent lefebvre "
    "michel rossi russo ferrari esposito bianchi romano colombo ricci marino greco "
    "nowak kowalski wisniewski wojcik kaminski lewandowski zielinski szymanski "
    "hansen johansen olsen larsen andersen pedersen nilsen kristiansen jensen karlsen "
    "tanaka suzuki takahashi watanabe ito yamamoto nakamura kobayashi kato yoshida"
).split()
# Weighted: the large mailbox providers take most addresses, as on any real list.
BIG_DOMAINS = (
    ("gmail.com", 310), ("yahoo.com", 60), ("outlook.com", 55), ("hotmail.com", 45),
    ("icloud.com", 40), ("gmx.de", 25), ("web.de", 22), ("ukr.net", 30), ("i.ua", 10),
    ("orange.fr", 15), ("free.fr", 10), ("aol.com", 10), ("proton.me", 12), ("mail.ru", 8),
    ("yandex.ru", 6), ("t-online.de", 10), ("libero.it", 6), ("wp.pl", 6), ("live.com", 10),
    ("comcast.net", 8), ("btinternet.com", 6), ("seznam.cz", 4), ("me.com", 5),
    ("googlemail.com", 5), ("msn.com", 4), ("laposte.net", 4), ("sfr.fr", 4), ("o2.pl", 3),
    ("virgilio.it", 3), ("hotmail.co.uk", 5), ("yahoo.co.uk", 4), ("fastmail.com", 3),
    ("posteo.de", 3), ("mailbox.org", 2), ("tutanota.com", 2), ("zoho.com", 2),
    ("bigpond.com", 2), ("shaw.ca", 2), ("rogers.com", 2), ("verizon.net", 2),
)  # fmt: skip
ORG_WORDS = (
    "north south east west river lake hill bay city union central pacific atlantic "
    "alpine harbor valley forest prairie coastal metro capital summit"
).split()
ORG_KINDS = ("news", "media", "law", "health", "uni", "bank", "energy", "labs")
ORG_TLDS = ("com", "org", "net", "co.uk", "de", "fr", "com.ua", "eu")


def domain_slots() -> list[str]:
    """1,000 slots, one domain each, in proportion to its weight: 200 distinct domains."""
    slots = [d for d, w in BIG_DOMAINS for _ in range(w)]
    orgs = [
        ORG_WORDS[i % len(ORG_WORDS)]
        + ORG_KINDS[i % len(ORG_KINDS)]
        + "."
        + ORG_TLDS[i % len(ORG_TLDS)]
        for i in range(200 - len(BIG_DOMAINS))
    ]
    i = 0
    while len(slots) < 1000:
        slots.append(orgs[i % len(orgs)])
        i += 1
    return slots[:1000]


# A hash of a row number into 0..m-1 (Knuth's multiplicative hash), spread but repeatable.
def H(expr: str, salt: int, m: int) -> str:  # noqa: N802
    return f"((({expr})::bigint * 2654435761 + {salt}) % 4294967296 % {m})"


def _structure(conn: psycopg.Connection) -> tuple[list[str], list[str], list[str]]:
    """The big tables' foreign keys, keys (primary/unique) and plain indexes, as DDL."""
    tables = list(BIG_TABLES)
    fks = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype = 'f' AND (conrelid::regclass::text = ANY(%(t)s)"
        " OR confrelid::regclass::text = ANY(%(t)s))",
        {"t": tables},
    ).fetchall()
    keys = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype IN ('p', 'u') AND conrelid::regclass::text = ANY(%(t)s)"
        " ORDER BY contype",
        {"t": tables},
    ).fetchall()
    plain = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%(t)s)"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        {"t": tables},
    ).fetchall()
    drop = [f'ALTER TABLE {t} DROP CONSTRAINT "{n}"' for t, n, _ in fks]
    drop += [f'ALTER TABLE {t} DROP CONSTRAINT "{n}"' for t, n, _ in keys]
    drop += [f'DROP INDEX "{n}"' for n, _ in plain]
    build = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d in keys]
    build += [d for _, d in plain]
    link = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d in fks]
    return drop, build, link


def seed(url: str, secret: str, log: Callable[[str], None] = print, scale: float = 1.0) -> float:
    """Fill the migrated, empty database at `url`; returns the seconds it took."""
    _scale[0] = scale
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET work_mem = '256MB'")
        drop, build, link = _structure(conn)

        def step(label: str, *sql: str, params: dict[str, object] | None = None) -> None:
            t = time.perf_counter()
            rows = 0
            for s in sql:
                # With parameters, a literal % (SQL's modulo) is written %% for psycopg.
                cur = conn.execute(s.replace(" % ", " %% ") if params else s, params)
                rows += max(cur.rowcount, 0)
            log(f"  {label:<34} {rows:>10,} rows {time.perf_counter() - t:7.1f} s")

        for s in drop:
            conn.execute(s)
        _small_tables(conn, step)
        _subscribers(conn, step)
        step("subscriptions", *_subscriptions_sql())
        _deliveries(conn, step)
        _bounces(conn, step)
        _suppressions(conn, secret, step)
        _audit(step)
        t = time.perf_counter()
        for s in build:
            conn.execute(s)
        log(f"  {'keys and indexes back':<34} {'':>10}      {time.perf_counter() - t:7.1f} s")
        t = time.perf_counter()
        for s in link:
            conn.execute(s)
        log(
            f"  {'foreign keys back (validated)':<34} {'':>10}"
            f"      {time.perf_counter() - t:7.1f} s"
        )
        for table in (*BIG_TABLES, "suppressions", "stories", "digests", "lists", "users"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT coalesce(max(id), 1) FROM {table}))"
            )
        # As autovacuum leaves a table after a load: visibility map set, statistics fresh.
        t = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        log(f"  {'VACUUM ANALYZE':<34} {'':>10}      {time.perf_counter() - t:7.1f} s")
        dbname = conn.info.dbname
        conn.execute(f"COMMENT ON DATABASE \"{dbname}\" IS '{SEED_MARK}'")
    return time.perf_counter() - t0


def is_seeded(url: str) -> bool:
    with psycopg.connect(url) as conn:
        mark = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE datname = current_database()"
        ).fetchone()
    return bool(mark and mark[0] == SEED_MARK)


Step = Callable[..., None]


def _small_tables(conn: psycopg.Connection, step: Step) -> None:
    from newsletter.accounts.passwords import hash_password

    now = datetime.now(UTC)
    with conn.transaction():
        for lid, slug, name, schedule in LISTS:
            conn.execute(
                "INSERT INTO lists (id, slug, name, description, schedule, timezone, created_at)"
                " VALUES (%s, %s, %s, %s, %s, 'Europe/Kyiv', now() - interval '400 days')",
                (lid, slug, name, f"{name}: the newsroom's {slug} newsletter.", schedule),
            )
        pw = hash_password("bench-password-not-used-1234")
        for i, (email, role) in enumerate(
            (("editor@newsroom.example", "editor"), ("desk@newsroom.example", "sender"),
             ("chief@newsroom.example", "admin"), ("intern@newsroom.example", "viewer"),
             ("owner@newsroom.example", "owner"), ("former@newsroom.example", "editor")),
            start=1,
        ):  # fmt: skip
            conn.execute(
                "INSERT INTO users (id, email, password_hash, role, disabled, created_at,"
                " last_login_at) VALUES (%s, %s, %s, %s, %s, now() - interval '200 days', now())",
                (i, email, pw, role, email.startswith("former")),
            )
    paragraph = (
        "Residents who stayed through the winter describe the shelling in the eastern "
        "districts, the queues for water at the school, and volunteers who drive in bread "
        "every morning. "
    )
    step(
        "stories",
        "INSERT INTO stories (id, slug, title, lede, body, body_html, url, author, guid, list_id,"
        " section, position, published_at, created_at)"
        " SELECT i, 'story-' || i, 'Story ' || i || ': life near the front line, day ' || i,"
        " %(p)s, repeat(%(p)s || E'\\n\\n', 8), repeat('<p>' || %(p)s || '</p>', 8),"
        " 'https://news.example.com/2026/stories/story-' || i, 'Staff reporter ' || (i % 12),"
        " 'https://news.example.com/2026/stories/story-' || i, 1 + i % 5,"
        " (ARRAY['World', 'Politics', 'Business', 'Culture', NULL])[1 + i % 5], i * 1000,"
        " now() - (200 - i) * interval '3 hours', now() - (200 - i) * interval '3 hours'"
        " FROM generate_series(1, 200) i",
        params={"p": paragraph},
    )
    html = (
        "<html><body>"
        + ("<table><tr><td><h2>Story</h2><p>" + paragraph + "</p></td></tr></table>") * 150
        + "</body></html>"
    )
    text = (paragraph + "\n\n") * 60
    with conn.transaction():
        for n, (lid, days, status) in enumerate(DIGESTS, start=1):
            ago = "20 minutes" if days == 0 else f"{days} days 3 hours"
            started = None if status == "draft" else f"now() - interval '{ago}'"
            finished = f"({started}) + interval '7 minutes'" if status == "sent" else "NULL"
            conn.execute(
                "INSERT INTO digests (id, list_id, subject, status, html, text, story_ids,"
                " period_key, created_at, started_at, finished_at, progress_at, ledger_complete,"
                " carry, requested_by)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now() - interval '{days} days 4 hours',"
                f" {started or 'NULL'}, {finished},"
                f" {started or 'NULL'}, true, '[]', 'desk@newsroom.example')",
                (n, lid, f"{LISTS[lid - 1][2]} #{n}: the day's stories", status, html, text,
                 f"[{', '.join(str(200 - n * 3 - k) for k in range(12))}]",
                 f"{(now.date().toordinal() - days)}-{n}"),
            )  # fmt: skip


def _subscribers(conn: psycopg.Connection, step: Step) -> None:
    slots = domain_slots()
    # Local parts in a few styles people use; the number keeps each address unique.
    local = (
        "CASE i % 5"
        " WHEN 0 THEN f || '.' || l || (i % 97)"
        " WHEN 1 THEN left(f, 1) || l || (i % 1000)"
        " WHEN 2 THEN f || '_' || l"
        " WHEN 3 THEN f || (1950 + i % 60)"
        " ELSE l || '.' || f END || '.' || i"
    )
    step(
        "subscribers",
        "INSERT INTO subscribers (id, email, name, status, bounce_score, created_at)"
        f" SELECT i, {local} || '@' || (%(d)s::text[])[1 + {H('i', 7, 1000)}],"
        " initcap(f) || ' ' || initcap(l),"
        f" CASE WHEN {H('i', 11, 1000)} < 10 THEN 'bounced'"
        f" WHEN {H('i', 11, 1000)} < 12 THEN 'complained'"
        f" WHEN {H('i', 11, 1000)} < 15 THEN 'suppressed' ELSE 'active' END,"
        f" CASE WHEN {H('i', 13, 100)} < 3 THEN 1 + i % 4 ELSE 0 END,"
        # Joined over the last 90 days, ids growing with time.
        f" now() - interval '90 days' + (i::float8 / {n(SUBSCRIBERS)}) * interval '90 days'"
        " FROM (SELECT i, (%(f)s::text[])[1 + i % %(nf)s] AS f,"
        " (%(l)s::text[])[1 + (i / %(nf)s + i * 7) % %(nl)s] AS l"
        f" FROM generate_series(1, {n(SUBSCRIBERS)}) i) g",
        params={"d": slots, "f": FIRST, "l": LAST, "nf": len(FIRST), "nl": len(LAST)},
    )


def _subscriptions_sql() -> list[str]:
    out = []
    for lid, cond in MEMBERSHIP.items():
        h = H("s.id", 100 + lid, 100)
        out.append(
            "INSERT INTO subscriptions (list_id, subscriber_id, status, token_nonce, created_at,"
            " confirm_sent_at, confirmed_at, unsubscribed_at, consent_at, consent_ip,"
            " consent_user_agent, consent_source, consent_text_version)"
            f" SELECT {lid}, s.id,"
            f" CASE WHEN {h} < 88 THEN 'confirmed' WHEN {h} < 93 THEN 'unconfirmed'"
            " ELSE 'unsubscribed' END, 0, s.created_at + interval '1 minute',"
            " s.created_at + interval '1 minute',"
            f" CASE WHEN {h} < 88 OR {h} >= 93 THEN s.created_at + interval '25 minutes' END,"
            f" CASE WHEN {h} >= 93"
            f" THEN least(now(), s.created_at + ({h} - 92) * interval '2 days') END,"
            " s.created_at, '203.0.113.' || (s.id % 250),"
            " 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36',"
            f" (ARRAY['form', 'form', 'form', 'import', 'api'])[1 + {h} % 5], 'v3'"
            f" FROM subscribers s WHERE {cond} ORDER BY s.id"
        )
    return out


def _deliveries(conn: psycopg.Connection, step: Step) -> None:
    for d, (lid, _days, status) in enumerate(DIGESTS, start=1):
        if status == "draft":
            continue
        h = H("s.subscriber_id", d * 7919, 10000)
        # The send still going has worked through the first 60% of its ledger.
        done = "true" if status == "sent" else f"s.subscriber_id < {n(600_000)}"
        step(
            f"deliveries digest {d} ({status})",
            "INSERT INTO deliveries (digest_id, subscriber_id, status, attempts, next_attempt_at,"
            " smtp_code, smtp_reply, message_id, updated_at, variant)"
            f" SELECT {d}, s.subscriber_id, x.st,"
            " CASE x.st WHEN 'queued' THEN 0 WHEN 'deferred' THEN 3 ELSE 1 END,"
            " CASE x.st WHEN 'deferred' THEN d.started_at + interval '2 hours' END,"
            " CASE x.st WHEN 'sent' THEN 250 WHEN 'bounced' THEN 550 WHEN 'deferred' THEN 421"
            " WHEN 'failed' THEN 554 END,"
            " CASE x.st WHEN 'bounced' THEN '550 5.1.1 <' || s.subscriber_id || '>: Recipient"
            " address rejected: User unknown in virtual mailbox table'"
            " WHEN 'deferred' THEN '421 4.7.0 Try again later, closing connection.'"
            " WHEN 'failed' THEN '554 5.7.1 Service unavailable; client host blocked' END,"
            " CASE WHEN x.st <> 'queued' THEN '<' || s.subscriber_id"
            f" || '.{d}.5f3a9c1e2b@news.example.com>' END,"
            " CASE WHEN x.st <> 'queued' THEN d.started_at"
            f" + (s.subscriber_id::float8 / {n(SUBSCRIBERS)}) * interval '7 minutes' END, 0"
            " FROM subscriptions s JOIN digests d ON d.id = %(n)s,"
            f" LATERAL (SELECT CASE WHEN NOT ({done}) THEN 'queued'"
            f" WHEN {h} < 9700 THEN 'sent' WHEN {h} < 9850 THEN 'bounced'"
            f" WHEN {h} < 9920 THEN 'deferred' ELSE 'failed' END AS st) x"
            f" WHERE s.list_id = {lid} AND s.status = 'confirmed'",
            params={"n": d},
        )


def _bounces(conn: psycopg.Connection, step: Step) -> None:
    h = H("b.id", 31, 100)
    step(
        "bounce_events",
        "INSERT INTO bounce_events (delivery_id, subscriber_id, kind, reason, status_code,"
        " diagnostic, remote_domain, source, created_at, fingerprint)"
        " SELECT b.id, b.subscriber_id, k.kind, k.reason, k.code, k.diag,"
        " split_part(s.email, '@', 2), (ARRAY['smtp', 'smtp', 'mailbox', 'webhook'])[1 + b.id % 4],"
        " b.updated_at + interval '3 minutes', md5(b.id::text) || md5(b.subscriber_id::text)"
        " FROM (SELECT * FROM deliveries WHERE status = 'bounced' AND id % 3 = 0"
        f" LIMIT {n(50_000)}) b"
        " JOIN subscribers s ON s.id = b.subscriber_id,"
        f" LATERAL (SELECT CASE WHEN {h} < 50 THEN 'hard' WHEN {h} < 80 THEN 'soft'"
        f" WHEN {h} < 92 THEN 'policy' ELSE 'complaint' END AS kind,"
        f" CASE WHEN {h} < 50"
        " THEN (ARRAY['userunknown', 'userunknown', 'hostunknown', 'suspend'])[1 + b.id % 4]"
        f" WHEN {h} < 80 THEN (ARRAY['mailboxfull', 'exceedlimit', 'expired', 'toomanyconn',"
        " 'systemerror'])[1 + b.id % 5]"
        f" WHEN {h} < 92 THEN (ARRAY['blocked', 'spamdetected', 'badreputation',"
        " 'policyviolation'])[1 + b.id % 4]"
        " ELSE 'feedback' END AS reason,"
        f" CASE WHEN {h} < 50 THEN '5.1.1' WHEN {h} < 80 THEN '4.2.2' WHEN {h} < 92 THEN '5.7.1'"
        " END AS code,"
        f" CASE WHEN {h} < 50"
        " THEN '550 5.1.1 The email account that you tried to reach does not exist.'"
        f" WHEN {h} < 80 THEN '452 4.2.2 The email account that you tried to reach is over quota.'"
        f" WHEN {h} < 92"
        " THEN '550 5.7.1 Our system has detected that this message is likely unsolicited mail.'"
        " ELSE 'abuse report (ARF) from the mailbox provider' END AS diag) k",
    )


def _suppressions(conn: psycopg.Connection, secret: str, step: Step) -> None:
    """The bounced, complained and suppressed readers' addresses plus erased ones, keyed
    hashes as the application writes them (HMAC with the secret, computed here)."""
    t = time.perf_counter()
    rows = conn.execute(
        "SELECT email, status, created_at FROM subscribers WHERE status <> 'active' ORDER BY id"
    ).fetchall()
    reasons = {
        "bounced": "hard-bounce",
        "complained": "complaint",
        "suppressed": "soft-bounce-limit",
    }
    key = secret.encode()
    out = [
        (hmac.new(key, e.encode(), hashlib.sha256).hexdigest(), reasons[s], c) for e, s, c in rows
    ]
    k = 0
    while len(out) < n(20_000):
        e = f"erased-reader-{k}@example.net"
        at = rows[k % len(rows)][2]
        out.append((hmac.new(key, e.encode(), hashlib.sha256).hexdigest(), "erased", at))
        k += 1
    with conn.cursor().copy("COPY suppressions (email_hash, reason, created_at) FROM STDIN") as cp:
        for row in out:
            cp.write_row(row)
    step(f"suppressions ({len(out):,} by COPY, {time.perf_counter() - t:.1f} s)")


def _audit(step: Step) -> None:
    actions = (
        "stories.add", "stories.add", "stories.add", "digests.compose", "digests.test_send",
        "sends.send", "sends.approve", "subscribers.add", "subscribers.add", "subscribers.import",
        "subscribers.erase", "lists.update", "bounces.ingest", "bounces.ingest", "bounces.ingest",
        "suppressions.lift", "sends.pause", "sends.resume", "users.token", "feeds.add",
    )  # fmt: skip
    h = H("i", 41, 1000)
    step(
        "audit_log",
        "INSERT INTO audit_log (at, actor, via, action, target, detail)"
        f" SELECT now() - interval '90 days' + (i::float8 / {n(100_000)}) * interval '90 days',"
        f" (ARRAY['editor@newsroom.example', 'desk@newsroom.example', 'chief@newsroom.example',"
        f" 'system', 'owner@newsroom.example'])[1 + {h} % 5],"
        f" (ARRAY['console', 'console', 'cli', 'api', 'system'])[1 + {h} % 5],"
        f" (%(a)s::text[])[1 + i % {len(actions)}],"
        " CASE i % 4 WHEN 0 THEN 'story:' || (i % 200 + 1) WHEN 1 THEN 'digest:' || (i % 20 + 1)"
        " WHEN 2 THEN 'subscriber:' || (i * 7 % 1000000 + 1) ELSE 'list:' || (i % 5 + 1) END,"
        " json_build_object('count', i % 50, 'note', 'bench')"
        f" FROM generate_series(1, {n(100_000)}) i",
        params={"a": list(actions)},
    )
