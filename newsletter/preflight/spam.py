"""SpamAssassin's score of the message, when `spamassassin` is installed.

Local tests only (`-L`: no DNS blocklists, no network), so the score reflects the message
itself: its HTML-to-text ratio, its headers, its wording. At or over the threshold
SpamAssassin's own default (5.0) a receiver running it with defaults files the digest as
spam, which blocks; over WARN_AT it warns, naming the rules that scored.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from newsletter.preflight.findings import Finding, passed, problem

THRESHOLD = 5.0
WARN_AT = 2.5
TIMEOUT_SECONDS = 60
_STATUS = re.compile(r"X-Spam-Status: \w+, score=(-?[\d.]+)")
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z][A-Z0-9_]+)\s+(.*)$", re.M)


def spamassassin(raw: bytes) -> Finding:
    exe = shutil.which("spamassassin")
    if exe is None:
        return passed("spamassassin", "skipped: spamassassin is not installed")
    try:
        done = subprocess.run(
            [exe, "-t", "-L"], input=raw, capture_output=True, timeout=TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return problem(
            "spamassassin", f"not scored: {exc.__class__.__name__}: {exc}", blocking=False
        )
    out = done.stdout.decode("utf-8", "replace")
    found = _STATUS.search(out)
    if found is None:
        return problem(
            "spamassassin",
            f"not scored: spamassassin exited {done.returncode} without a score",
            blocking=False,
        )
    score = float(found.group(1))
    details = out.split("Content analysis details:", 1)[-1]
    rules = [
        f"{name} {float(points):+g} ({text.strip()})"
        for points, name, text in _RULE.findall(details)
        if float(points) > 0
    ]
    said = f"score {score:g} (spam at {THRESHOLD:g})"
    if score >= WARN_AT:
        fix = "; ".join(rules[:8]) or "see `spamassassin -t -L` for the rules"
        return problem(
            "spamassassin",
            f"{said}: reword or restructure what these rules flag: {fix}",
            blocking=score >= THRESHOLD,
        )
    return passed("spamassassin", said)
