"""Benchmark: the per-message cost of the sending fast path, a baseline revision and now.

The same 12-story digest as bench/send.py (rendered once with the built-in templates)
is prepared with mail/fastpath.py DigestTemplate of `--baseline REV` (loaded from git,
as that revision's file) and of the working tree, and `render_wire` is timed per
message for many readers, the runs interleaved so both see the same machine:

- baseline: the digest as that revision composed it (no preference link);
- now, no attributes: the digest as composed now (the preference link in the footer);
- now, 2 attributes: the same with `reader.attributes.city` and a second attribute
  with a fallback, and readers who have them (every other one without the second).

Prints the median µs of CPU per message of each (over chunks of 1000 messages, the
cases interleaved chunk by chunk) and the load average.

    python bench/fastpath.py [--baseline 3249538] [--messages 20000] [--repeat 7] [--dkim]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARAGRAPH = (
    "Residents who stayed through the winter describe the shelling in the eastern districts, "
    "the queues for water at the school, and volunteers who drive in bread every morning. "
)


def baseline_module(rev: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:newsletter/mail/fastpath.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="fastpath-baseline-"))
    path = folder / "fastpath_baseline.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("fastpath_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fastpath_baseline"] = module  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    return module


def digest() -> tuple[str, str, str]:
    """(subject, text, html) of a 12-story digest rendered with the built-in templates."""
    from newsletter.config import get_settings
    from newsletter.digests.render import render_digest
    from newsletter.models import MailingList, Story

    stories = [
        Story(
            id=i + 1,
            slug=f"story-{i}",
            title=f"Story {i}: life on the front line, day {i}",
            lede=PARAGRAPH,
            body="\n\n".join([PARAGRAPH * 3] * 4),
            section="Ukraine" if i % 2 else None,
        )
        for i in range(12)
    ]
    mlist = MailingList(slug="news", name="The Newsroom Daily", timezone="UTC")
    composed = render_digest(get_settings(), mlist, stories, now=datetime.now(UTC), digest_id=1)
    return composed.subject, composed.text, composed.html


def without_preferences(text: str, html: str) -> tuple[str, str]:
    """The digest as the baseline's built-in templates made it (no preference link)."""
    text = text.replace("Manage your subscription: %%NL_PREFERENCES_URL%%\n", "")
    html = re.sub(r' (?:&middot;|·) <a href="%%NL_PREFERENCES_URL%%"[^>]*>[^<]*</a>', "", html)
    assert "%%NL_PREFERENCES_URL%%" not in text + html
    return text, html


def with_attributes(text: str, html: str) -> tuple[str, str]:
    from newsletter.digests import fields

    city, zone = fields.attribute("city"), fields.attribute("zone", "your zone")
    line = f"Weather in {city} ({zone})"
    text = text.replace("View in your browser", f"{line}\nView in your browser", 1)
    html = html.replace("</h1>", f"</h1><p>{line}</p>", 1)
    assert fields.uses_attributes(text, html)
    return text, html


def time_one(template: Any, readers: list[Any]) -> float:
    """µs of this process's CPU per message (CPU time, not wall time: on a shared,
    oversubscribed machine the wall clock also counts the time others ran)."""
    render = template.render_wire
    started = time.process_time()
    for r in readers:
        render(r)
    return (time.process_time() - started) / len(readers) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="3249538", help="git revision to compare with")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dkim", action="store_true", help="Sign with RSA-2048.")
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_DATA_DIR", tempfile.mkdtemp(prefix="fastpath-bench-"))

    from newsletter.config import get_settings
    from newsletter.mail import fastpath

    base = baseline_module(args.baseline)
    settings = get_settings()
    keys: list[Any] = []
    if args.dkim:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        from newsletter.mail.dkim import load_key

        pem = Path(tempfile.mkdtemp()) / "rsa.pem"
        pem.write_bytes(
            rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        keys = [load_key(pem, "example.com", "s1")]
    subject, text, html = digest()
    old_text, old_html = without_preferences(text, html)
    attr_text, attr_html = with_attributes(text, html)

    def make(module: ModuleType, t: str, h: str) -> Any:
        return module.DigestTemplate(
            settings=settings,
            digest_id=1,
            list_slug="news",
            list_name="The Newsroom Daily",
            subject=subject,
            text=t,
            html=h,
            dkim_keys=keys,
        )

    n = args.messages
    plain = [
        fastpath.Recipient(i + 1, f"reader{i}@example.com", f"Reader {i}", i + 1) for i in range(n)
    ]
    old_readers = [base.Recipient(i + 1, r.email, r.name, i + 1) for i, r in enumerate(plain)]
    attributed = [
        fastpath.Recipient(
            i + 1,
            r.email,
            r.name,
            i + 1,
            {"city": "Kyiv" if i % 3 else "Zaporizhzhia & <Khortytsia>", "zone": 3}
            if i % 2
            else {"city": "Lviv"},
        )
        for i, r in enumerate(plain)
    ]
    cases = {
        f"baseline {args.baseline}": (make(base, old_text, old_html), old_readers),
        "now, no attributes": (make(fastpath, text, html), plain),
        "now, 2 attributes": (make(fastpath, attr_text, attr_html), attributed),
    }
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for template, readers in cases.values():
        time_one(template, readers[:2000])  # warm-up
    # Interleaved in chunks, so a change of the machine's load falls on every case alike.
    chunk = min(1000, n)
    for _ in range(args.repeat):
        for start in range(0, n, chunk):
            for name, (template, readers) in cases.items():
                runs[name].append(time_one(template, readers[start : start + chunk]))
    print(
        f"per message, render_wire{' + DKIM RSA-2048' if keys else ''}, CPU time, "
        f"{n} messages x {args.repeat} runs in chunks of {chunk}, "
        f"html {len(html.encode()):,} bytes"
    )
    for name, values in runs.items():
        print(
            f"  {name:24} median {statistics.median(values):7.2f} µs  "
            f"(min {min(values):.2f}, max {max(values):.2f})"
        )
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
