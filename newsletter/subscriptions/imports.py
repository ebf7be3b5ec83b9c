"""A CSV import from the console: a dry run first, then the import in parts, both on a
thread of the web process so a big file never holds a request open.

The dry run reads the whole file in one read-only transaction (so an address twice in
the file counts once, as the import would find it). The uploaded file waits in
<data dir>/imports/<id>.csv beside its state, <id>.json. The import runs in parts of
`PART` rows, each its own transaction (`actions.import_part`), and the state file says
after each part how far it got, so the progress page can tell the truth and a run cut
short (the web process restarted) continues from the first row not yet committed. The
file is deleted when the import is done; old state goes after a day (`sweep`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from newsletter.config import Settings
from newsletter.errors import InvalidInput, NotFound

PART = 500
KEEP_SECONDS = 86400
# A running import whose state has not moved for this long lost its process.
STALL_SECONDS = 120
MAX_BYTES = 50 * 1024 * 1024


@dataclass
class Job:
    id: str
    list_slug: str
    confirmed: bool
    filename: str
    rows: int
    preview: dict[str, Any] = field(default_factory=dict)  # the dry run's report
    state: str = "checking"  # checking, previewed, running, done, failed
    done_rows: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    updated: float = field(default_factory=time.time)

    @property
    def stalled(self) -> bool:
        busy = self.state in ("checking", "running")
        return busy and time.time() - self.updated > STALL_SECONDS

    @property
    def percent(self) -> int:
        return 100 if not self.rows else int(100 * self.done_rows / self.rows)


def folder(settings: Settings) -> Path:
    path = settings.data_dir.resolve() / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise InvalidInput("file", f"The file is over {MAX_BYTES // 1024 // 1024} MB.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("file", "The file is not UTF-8 text.") from None


def create(settings: Settings, text: str, list_slug: str, confirmed: bool, filename: str) -> Job:
    """Keep the file for its dry run and the import."""
    sweep(settings)
    rows = sum(count for _, count, _ in parts(text))
    job = Job(secrets.token_urlsafe(12), list_slug, confirmed, filename[:200], rows)
    (folder(settings) / f"{job.id}.csv").write_text(text, encoding="utf-8")
    save(settings, job)
    return job


def check(
    settings: Settings,
    job_id: str,
    preview: Callable[[io.StringIO, Callable[[int], None]], dict[str, Any]],
) -> Job:
    """The dry run, its progress saved as it goes; then the job waits for the operator."""
    job = load(settings, job_id)
    text = (folder(settings) / f"{job.id}.csv").read_text(encoding="utf-8")

    def progress(done: int) -> None:
        job.done_rows = done
        save(settings, job)

    try:
        job.preview = preview(io.StringIO(text), progress)
    except Exception as exc:  # noqa: BLE001 - shown on the page: a bad file, a lost database
        job.state, job.error = "failed", str(getattr(exc, "message", exc))[:500]
    else:
        job.state = "previewed"
    job.done_rows = 0
    save(settings, job)
    return job


def load(settings: Settings, job_id: str) -> Job:
    if not job_id.replace("-", "").replace("_", "").isalnum():
        raise NotFound("id", "There is no such import.")
    path = folder(settings) / f"{job_id}.json"
    try:
        return Job(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise NotFound("id", "There is no such import (imports are kept for a day).") from None


def save(settings: Settings, job: Job) -> None:
    """Atomically: the progress page never reads half a file."""
    job.updated = time.time()
    path = folder(settings) / f"{job.id}.json"
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(asdict(job)), encoding="utf-8")
    os.replace(temp, path)


def sweep(settings: Settings) -> None:
    """Files of imports older than a day go (they hold addresses)."""
    cutoff = time.time() - KEEP_SECONDS
    for path in folder(settings).iterdir():
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


def parts(text: str) -> Iterator[tuple[int, int, str]]:
    """(first line number, rows, CSV text with the header) for each part of the file;
    line numbers count records as the whole-file import does (the header is line 1)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return
    first = 2
    while True:
        buffer = io.StringIO()
        out = csv.writer(buffer)
        out.writerow(header)
        count = 0
        for row in reader:
            out.writerow(row)
            count += 1
            if count == PART:
                break
        if count:
            yield first, count, buffer.getvalue()
            first += count
        if count < PART:
            return


def begin(settings: Settings, job_id: str) -> Job:
    """The job marked running, before the thread that imports it starts: the page the
    operator is sent to then refreshes itself however late the thread gets going (it
    showed the dry run again, and stayed there, when the page came first)."""
    job = load(settings, job_id)
    job.state, job.error = "running", ""
    save(settings, job)
    return job


def run(
    settings: Settings, job_id: str, import_part: Callable[[io.StringIO, int], dict[str, Any]]
) -> Job:
    """Import the rows not yet imported of a job `begin` marked running, part by part,
    saving progress after each."""
    job = load(settings, job_id)
    text = (folder(settings) / f"{job.id}.csv").read_text(encoding="utf-8")
    total = job.result or {
        "added": 0,
        "confirmation_sent": 0,
        "unchanged": 0,
        "skipped": [],
        "invalid": [],
    }
    try:
        for first, count, chunk in parts(text):
            if first - 2 < job.done_rows:
                continue  # committed by an earlier run
            report = import_part(io.StringIO(chunk), first)
            for key in ("added", "confirmation_sent", "unchanged"):
                total[key] += report[key]
            for key in ("skipped", "invalid"):
                total[key].extend(report[key])
            job.done_rows += count
            job.result = total
            save(settings, job)
    except Exception as exc:  # noqa: BLE001 - shown on the progress page; the rest can resume
        job.state, job.error = "failed", str(getattr(exc, "message", exc))[:500]
        save(settings, job)
        return job
    job.state = "done"
    job.done_rows = job.rows
    save(settings, job)
    (folder(settings) / f"{job.id}.csv").unlink(missing_ok=True)
    return job
