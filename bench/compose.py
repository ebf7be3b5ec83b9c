"""Benchmark: compose a 20-story digest, then personalise it for 100,000 recipients.

Composition (select, render, inline CSS once) is timed as the median of several runs;
personalisation (both parts, every recipient) as recipients per second on one core.
Runs on a throw-away SQLite database; nothing else is touched.

    python bench/compose.py [--runs 5] [--recipients 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "stories" / "bakhmut.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--recipients", type=int, default=100_000)
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="newsletter-bench-")
    os.environ["NEWSLETTER_DATA_DIR"] = data_dir
    os.environ["NEWSLETTER_DATABASE_URL"] = f"sqlite:///{data_dir}/bench.db"
    sys.path.insert(0, str(ROOT))

    from sqlalchemy import select

    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.digests import fields as placeholders
    from newsletter.digests.compose import compose_digest
    from newsletter.digests.fields import personalise
    from newsletter.migrate import upgrade
    from newsletter.models import MailingList
    from newsletter.stories.parse import parse_story_file
    from newsletter.stories.store import store_stories
    from newsletter.subscriptions.lists import create_list

    upgrade()
    now = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    sample = parse_story_file(SAMPLE)[0]
    with session_scope() as session:
        create_list(session, "bench", "The Bench Brief")
        drafts = []
        for n in range(20):
            drafts.append(
                type(sample)(
                    title=f"{sample.title} ({n + 1})",
                    lede=sample.lede,
                    paragraphs=list(sample.paragraphs),
                    source=f"bench {n}",
                    published_at=now - timedelta(minutes=n + 1),
                )
            )
        store_stories(session, drafts, now=now - timedelta(hours=1))

    settings = get_settings()
    timings = []
    digest = None
    for _ in range(args.runs):
        with session_scope() as session:
            mlist = session.scalar(select(MailingList))
            start = time.perf_counter()
            digest = compose_digest(session, settings, mlist, now=now)
            timings.append(time.perf_counter() - start)
            session.rollback()  # drafts would not use stories up anyway; keep the db small
    with session_scope() as session:
        mlist = session.scalar(select(MailingList))
        digest = compose_digest(session, settings, mlist, now=now)
        assert digest is not None
        html, text = digest.html, digest.text

    values = [
        {
            placeholders.NAME: f"Reader {i}",
            placeholders.EMAIL: f"reader{i}@example.com",
            placeholders.UNSUBSCRIBE_URL: f"{settings.base_url}/unsubscribe/{i:032x}",
        }
        for i in range(args.recipients)
    ]
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        size = 0
        for v in values:
            h, t = personalise(html, text, v)
            size += len(h) + len(t)
        rates.append(args.recipients / (time.perf_counter() - start))

    print(
        f"digest: 20 stories, html {len(html.encode()):,} bytes, text {len(text.encode()):,} bytes"
    )
    print(
        f"compose (select + render + inline CSS), median of {args.runs}: "
        f"{statistics.median(timings) * 1000:.1f} ms"
    )
    print(
        f"personalise both parts for {args.recipients:,} recipients, median of 3: "
        f"{statistics.median(rates):,.0f} recipients/s on one core"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
