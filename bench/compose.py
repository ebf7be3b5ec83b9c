"""Benchmark: compose a 20-story digest, then render it for 100,000 readers.

Composition (select, render, inline CSS once) is timed as the median of several runs,
twice: for 20 stories without images (the figure this benchmark always gave) and for
20 stories that each have a processed lead image (Media rows, as newsletter/media/
stores them: the lead shown full width, the others as thumbnails), runs alternating so
both see the same machine. Targets: <= 50 ms with images, >= 200,000 readers/s.
A reader's message is made the one way the package fills in reader fields, the sending
fast path (mail/fastpath.py): DigestTemplate.render (the complete message, as the
preview and the test send use it) and DigestTemplate.render_wire (the same as SMTP DATA,
dot-stuffed: what a send costs per recipient before SMTP), each as readers per second
on one core, median of 3, beside the floor of any Python fast path (the reader's HMAC
token and one copy of the message, C calls only). With --dkim each message is also
signed with a throw-away RSA-2048 key (5,000 readers by default: signing dominates).
Runs on a throw-away SQLite database; nothing else is touched.

    python bench/compose.py [--runs 9] [--recipients N] [--dkim]
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "stories" / "bakhmut.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--recipients", type=int, default=None, help="100,000 (5,000 with --dkim)")
    parser.add_argument("--dkim", action="store_true", help="sign with an RSA-2048 key")
    args = parser.parse_args()
    args.recipients = args.recipients or (5_000 if args.dkim else 100_000)

    data_dir = tempfile.mkdtemp(prefix="newsletter-bench-")
    os.environ["NEWSLETTER_DATA_DIR"] = data_dir
    os.environ["NEWSLETTER_DATABASE_URL"] = f"sqlite:///{data_dir}/bench.db"
    sys.path.insert(0, str(ROOT))

    from sqlalchemy import select

    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.digests.compose import compose_digest
    from newsletter.digests.preview import digest_template
    from newsletter.mail.fastpath import Recipient
    from newsletter.migrate import upgrade
    from newsletter.models import MailingList, Media
    from newsletter.stories.parse import parse_story_file
    from newsletter.stories.store import store_stories
    from newsletter.subscriptions.lists import create_list

    upgrade()
    now = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    sample = parse_story_file(SAMPLE)[0]
    with session_scope() as session:
        for slug, name in (("plain", "The Bench Brief"), ("images", "The Bench Brief")):
            mlist = create_list(session, slug, name)
            drafts = []
            for n in range(20):
                drafts.append(
                    type(sample)(
                        title=f"{sample.title} ({n + 1})",
                        lede=sample.lede,
                        paragraphs=list(sample.paragraphs),
                        source=f"bench {slug} {n}",
                        guid=f"bench-{slug}-{n}",
                        published_at=now - timedelta(minutes=n + 1),
                        section=("World", "Ukraine", None)[n % 3] if n else "Ukraine",
                        image_alt=f"Photo {n + 1} of the bench story" if slug == "images" else None,
                        image_credit="Bench Photo Agency" if slug == "images" else None,
                    )
                )
            stories = store_stories(session, drafts, mlist, now=now - timedelta(hours=1)).added
            if slug == "images":
                for n, story in enumerate(stories):
                    media = Media(
                        source_hash=f"{n:064d}",
                        source_url=f"https://photos.example.org/{n}.jpg",
                        key=f"bench-{n}",
                        content_type="image/jpeg",
                        width=600,
                        height=338,
                        bytes=48_000,
                    )
                    session.add(media)
                    session.flush()
                    story.image_media_id = media.id

    settings = get_settings()
    timings: dict[str, list[float]] = {"plain": [], "images": []}
    sizes: dict[str, tuple[int, int]] = {}
    for _ in range(args.runs):
        for slug, runs in timings.items():
            with session_scope() as session:
                mlist = session.scalar(select(MailingList).where(MailingList.slug == slug))
                assert mlist is not None
                start = time.perf_counter()
                digest = compose_digest(session, settings, mlist, now=now)
                runs.append(time.perf_counter() - start)
                assert digest is not None
                sizes[slug] = (len(digest.html.encode()), len(digest.text.encode()))
                session.rollback()  # drafts would not use stories up anyway; keep the db small
    with session_scope() as session:
        mlist = session.scalar(select(MailingList).where(MailingList.slug == "images"))
        assert mlist is not None
        digest = compose_digest(session, settings, mlist, now=now)
        assert digest is not None and digest.html.count("<img") == 20
        template = digest_template(settings, mlist, digest, dkim_keys=_keys(args.dkim))

    readers = [
        Recipient(delivery_id=i + 1, email=f"reader{i}@example.com", name=f"Reader {i}",
                  subscription_id=i + 1)
        for i in range(args.recipients)
    ]  # fmt: skip
    rates: dict[str, float] = {}
    whole = template.render_wire(readers[0])
    parts = [whole[i : i + 9000] for i in range(0, len(whole), 9000)]
    tokens = template._token

    def floor(r: Recipient) -> bytes:
        """What no Python fast path can avoid: the reader's HMAC token and one copy of
        the message into a new bytes object (C calls only)."""
        tokens(r.subscription_id)
        return b"".join(parts)

    for label, render in (
        ("render", template.render),
        ("render_wire", template.render_wire),
        ("floor", floor),
    ):
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            for r in readers:
                render(r)
            runs.append(args.recipients / (time.perf_counter() - start))
        rates[label] = statistics.median(runs)

    for slug, label in (("plain", "without images"), ("images", "with images   ")):
        html_bytes, text_bytes = sizes[slug]
        print(
            f"compose 20 stories {label} (select + render + inline CSS), median of "
            f"{args.runs}: {statistics.median(timings[slug]) * 1000:.1f} ms "
            f"(html {html_bytes:,} bytes, text {text_bytes:,} bytes)"
        )
    signed = ", DKIM-signed (RSA-2048)" if args.dkim else ""
    for label, rate in rates.items():
        if label == "floor":
            print(
                f"  floor (token + one copy of the {len(whole):,}-byte message, no glue): "
                f"{rate:,.0f} readers/s ({1e6 / rate:.1f} us)"
            )
            continue
        print(
            f"DigestTemplate.{label} for {args.recipients:,} readers{signed} of the digest "
            f"with images, median of 3: "
            f"{rate:,.0f} readers/s on one core ({1e6 / rate:.1f} us a message)"
        )
    return 0


def _keys(dkim: bool) -> list[Any]:
    if not dkim:
        return []
    from cryptography.hazmat.primitives.asymmetric import rsa

    from newsletter.mail.dkim import DkimKey

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return [DkimKey(domain="example.com", selector="bench", key=key)]


if __name__ == "__main__":
    sys.exit(main())
