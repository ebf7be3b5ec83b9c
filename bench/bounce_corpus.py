"""Measure newsletter.bounces.analyse on a labelled corpus of real bounces.

Usage: python bench/bounce_corpus.py [CORPUS_DIR]   (default: ../shared/bounces from the
repository root). CORPUS_DIR holds .eml files and a manifest.json whose entries give
file, recipient and class (hard, soft, policy, complaint, ignore).

A file counts as correct when our first result's kind equals the manifest class and,
where the manifest names a recipient, one of our results has that recipient.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from newsletter.bounces import BounceResult, analyse  # noqa: E402

CLASSES = ("hard", "soft", "policy", "complaint", "ignore")


def _verdict(results: list[BounceResult], recipient: str) -> tuple[str, str | None, bool]:
    """(kind, recipient, recipient matched) for the result that best fits the entry."""
    if not results:
        return "none", None, not recipient
    chosen = next((r for r in results if r.recipient == recipient), results[0])
    return chosen.kind, chosen.recipient, (not recipient) or chosen.recipient == recipient


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "corpus", nargs="?", type=Path, default=REPO_ROOT.parent / "shared" / "bounces"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every file")
    args = parser.parse_args(argv)

    manifest = json.loads((args.corpus / "manifest.json").read_text())
    raws = [(entry, (args.corpus / entry["file"]).read_bytes()) for entry in manifest]

    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    recipient_hits = 0
    recipient_total = 0
    confusion: Counter[tuple[str, str]] = Counter()
    misses = []
    started = time.perf_counter()
    outcomes = [(entry, analyse(raw)) for entry, raw in raws]
    elapsed = time.perf_counter() - started

    for entry, results in outcomes:
        expected = entry["class"]
        want_rcpt = (entry.get("recipient") or "").lower()
        kind, got_rcpt, rcpt_ok = _verdict(results, want_rcpt)
        reason = next((r.reason for r in results if r.recipient == got_rcpt), "")
        total[expected] += 1
        confusion[(expected, kind)] += 1
        if want_rcpt:
            recipient_total += 1
            recipient_hits += rcpt_ok
        ok = kind == expected and rcpt_ok
        right[expected] += ok
        if args.verbose or not ok:
            misses.append(
                f"  {entry['file']:<34} expected {expected}/{entry['reason']} {want_rcpt}"
                f"  got {kind}/{reason} {got_rcpt}"
            )

    print(f"corpus: {args.corpus} ({len(manifest)} messages)")
    for cls in CLASSES:
        if total[cls]:
            print(
                f"  {cls:<10} {right[cls]:>4}/{total[cls]:<4} {100 * right[cls] / total[cls]:6.1f}%"
            )
    n = sum(total.values())
    print(
        f"  {'overall':<10} {sum(right.values()):>4}/{n:<4} {100 * sum(right.values()) / n:6.1f}%"
    )
    if recipient_total:
        rate = 100 * recipient_hits / recipient_total
        print(f"recipient match: {recipient_hits}/{recipient_total} ({rate:.1f}%)")
    wrongly_hard = sum(v for (exp, got), v in confusion.items() if got == "hard" and exp != "hard")
    print(f"non-hard samples classed hard: {wrongly_hard}")
    print(f"throughput: {len(raws) / elapsed:.0f} messages/s ({elapsed * 1000:.0f} ms total)")
    print("confusion (expected -> got):")
    for (exp, got), count in sorted(confusion.items()):
        if exp != got:
            print(f"  {exp:<10} -> {got:<10} {count}")
    if misses:
        print(f"{'files' if args.verbose else 'misclassified'} ({len(misses)}):")
        print("\n".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
