"""A big list's ledger is written in two steps, and nobody notices but the clock.

start_send writes the first chunk (NEWSLETTER_SEND_FIRST_CHUNK, 5 here) so the first
message leaves at once; a task writes the rest. Real parts: SQLite and PostgreSQL, the
aiosmtpd server of tests/services.py, and `newsletter worker`/`beat` processes for the
end-to-end runs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Delivery, Digest, Subscriber, Subscription
from newsletter.sending import control
from newsletter.sending.batch import run_batch
from newsletter.sending.control import send_status
from newsletter.sending.job import Range, complete_ledger, recover_stalled, start_send
from tests.send_support import populate, send_env, wait_status
from tests.services import AppProcesses, SmtpServer

EMAILS = [f"reader{i}@example.org" for i in range(23)]


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """A first chunk of 5 and batches of 2, so 23 readers make several of each."""
    monkeypatch.setenv("NEWSLETTER_SEND_FIRST_CHUNK", "5")
    monkeypatch.setenv("NEWSLETTER_SEND_BATCH_SIZE", "2")
    get_settings.cache_clear()


def _start(digest_id: int) -> list[Range]:
    with session_scope() as session:
        digest = session.get(Digest, digest_id)
        assert digest is not None
        return start_send(session, get_settings(), digest)


def _complete(digest_id: int) -> list[Range]:
    with session_scope() as session:
        return complete_ledger(session, get_settings(), digest_id)


def _rows(digest_id: int) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).where(Delivery.digest_id == digest_id)) or 0)


def _digest(digest_id: int) -> tuple[str, bool]:
    with session_scope() as session:
        digest = session.get(Digest, digest_id)
        assert digest is not None
        return digest.status, digest.ledger_complete


def _status(digest_id: int) -> dict:
    """What `sends status ID --json` and /api/sends/ID show."""
    with session_scope() as session:
        digest = session.get(Digest, digest_id)
        assert digest is not None
        return send_status(session, digest)


def _run(digest_id: int, ranges: list[Range]) -> None:
    for lo, hi in ranges:
        run_batch(get_settings(), digest_id, lo, hi)


def _ids(ranges: list[Range]) -> set[int]:
    return {i for lo, hi in ranges for i in range(lo, hi + 1)}


def _delivery_ids(digest_id: int) -> set[int]:
    """The ledger's ids (PostgreSQL's ON CONFLICT burns sequence values: ranges have gaps)."""
    with session_scope() as session:
        return set(session.scalars(select(Delivery.id).where(Delivery.digest_id == digest_id)))


def test_the_first_chunk_is_written_at_once_and_the_rest_exactly_once(
    database: str, chunked: None
) -> None:
    digest_id = populate(EMAILS)
    with session_scope() as session:  # neither is ever selected, in either step
        for email, sub_status, link in (
            ("unconfirmed@example.org", "active", "unconfirmed"),
            ("bounced@example.org", "bounced", "confirmed"),
        ):
            sub = Subscriber(email=email, name="", status=sub_status)
            session.add(sub)
            session.flush()
            list_id = session.scalar(select(Digest.list_id).where(Digest.id == digest_id))
            session.add(Subscription(list_id=list_id, subscriber_id=sub.id, status=link))

    first = _start(digest_id)
    assert _rows(digest_id) == 5 and _ids(first) == _delivery_ids(digest_id)
    assert _digest(digest_id) == ("sending", False)
    assert _status(digest_id)["total"] == 5 and not _status(digest_id)["ledger_complete"]

    rest = _complete(digest_id)
    assert _rows(digest_id) == 23 and _digest(digest_id) == ("sending", True)
    assert _status(digest_id)["total"] == 23 and _status(digest_id)["ledger_complete"]
    new = _delivery_ids(digest_id) - _ids(first)
    assert len(new) == 18 and new <= _ids(rest) and not _ids(rest) & _ids(first)
    with session_scope() as session:
        got = set(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.digest_id == digest_id)
            )
        )
    assert got == set(EMAILS)

    assert _complete(digest_id) == [] and _rows(digest_id) == 23  # a second run adds nothing


def test_a_crashed_second_step_run_again_adds_nothing_twice(database: str, chunked: None) -> None:
    """A run that committed its rows but died before its flag (or whose flag was lost)."""
    digest_id = populate(EMAILS)
    _start(digest_id)
    _complete(digest_id)
    with session_scope() as session:
        session.execute(update(Digest).where(Digest.id == digest_id).values(ledger_complete=False))
    assert _complete(digest_id) == [] and _rows(digest_id) == 23
    assert _digest(digest_id) == ("sending", True)


def test_a_list_of_one_chunk_is_complete_at_once(database: str, chunked: None) -> None:
    digest_id = populate(EMAILS[:5])
    assert len(_ids(_start(digest_id))) == 5
    assert _digest(digest_id) == ("sending", True)
    assert _complete(digest_id) == [] and _rows(digest_id) == 5


def test_the_send_is_finished_only_when_the_rest_is_sent_too(
    database: str, chunked: None, smtp_server: SmtpServer
) -> None:
    digest_id = populate(EMAILS)
    _run(digest_id, _start(digest_id))
    assert len(smtp_server.messages) == 5
    assert _digest(digest_id) == ("sending", False), "finished with 18 readers unwritten"

    _run(digest_id, _complete(digest_id))
    assert _digest(digest_id) == ("sent", True)
    counts = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert sorted(counts) == sorted(EMAILS) and set(counts.values()) == {1}


def test_cancel_before_the_rest_is_written_stops_the_rest(
    database: str, chunked: None, smtp_server: SmtpServer
) -> None:
    digest_id = populate(EMAILS)
    first = _start(digest_id)
    _run(digest_id, first[:1])  # one batch of the first chunk went out
    with session_scope() as session:
        control.cancel(session, digest_id)
    assert _complete(digest_id) == []
    _run(digest_id, first[1:])  # the first chunk's other batches, late
    assert _rows(digest_id) == 5 and _digest(digest_id)[0] == "cancelled"
    assert len(smtp_server.messages) == 2


def test_a_paused_send_gets_its_rest_which_waits_for_resume(
    database: str, chunked: None, smtp_server: SmtpServer
) -> None:
    digest_id = populate(EMAILS)
    _start(digest_id)
    with session_scope() as session:
        control.operator_pause(session, digest_id)
    assert _complete(digest_id) == [] and _rows(digest_id) == 23
    assert _digest(digest_id) == ("paused", True)
    with session_scope() as session:
        ranges = control.operator_resume(session, get_settings(), digest_id)
    assert _delivery_ids(digest_id) <= _ids(ranges)
    _run(digest_id, ranges)
    assert _digest(digest_id)[0] == "sent" and len(smtp_server.messages) == 23


def test_recovery_queues_the_rest_that_was_never_written(
    database: str, chunked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process that said "send" died after its commit, before it queued anything."""
    import workers.tasks as tasks

    digest_id = populate(EMAILS)
    _start(digest_id)
    with session_scope() as session:  # as if SEND_STALL_SECONDS went by
        session.execute(update(Digest).where(Digest.id == digest_id).values(progress_at=None))
        found = recover_stalled(session, get_settings())
    assert [d for d, _ in found] == [digest_id]
    queued: list[tuple[str, tuple[int, ...]]] = []
    monkeypatch.setattr(tasks.complete_ledger, "delay", lambda *a: queued.append(("rest", a)))
    monkeypatch.setattr(tasks.send_batch, "delay", lambda *a: queued.append(("batch", a)))
    tasks.enqueue_ranges(digest_id, found[0][1])
    assert queued[0] == ("rest", (digest_id,)) and len(queued) == 1 + len(found[0][1])
    queued.clear()
    _complete(digest_id)
    tasks.enqueue_ranges(digest_id, [])  # complete now: never queued again
    assert queued == []


# Through real workers -----------------------------------------------------------------


@pytest.fixture(params=["embedded", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """SQLite with the file-system broker, or PostgreSQL with Redis."""
    if request.param == "embedded":
        return request.getfixturevalue("sqlite_db"), None
    return request.getfixturevalue("postgres_db"), request.getfixturevalue("redis_url")


def test_a_list_bigger_than_the_first_chunk_gets_one_message_each(
    backend: tuple[str, str | None], data_dir: Path, tmp_path: Path
) -> None:
    database, broker = backend
    digest_id = populate(EMAILS)
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, database, broker)
    env |= {"NEWSLETTER_SEND_FIRST_CHUNK": "5", "NEWSLETTER_SEND_BATCH_SIZE": "2"}
    app = AppProcesses(env, tmp_path)
    try:
        app.start_worker("--concurrency", "2")
        app.run("digest", "send", "--list", "news")
        st = wait_status(app, digest_id)
        assert (st["total"], st["sent"], st["queued"]) == (23, 23, 0)
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert sorted(counts) == sorted(EMAILS) and set(counts.values()) == {1}
    finally:
        app.stop()
        server.stop()


def test_a_crash_between_the_two_steps_is_recovered_by_beat(
    sqlite_db: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest_id = populate(EMAILS)
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, sqlite_db, None)
    env |= {
        "NEWSLETTER_SEND_FIRST_CHUNK": "5",
        "NEWSLETTER_SEND_BATCH_SIZE": "2",
        "NEWSLETTER_SEND_STALL_SECONDS": "30",
        "NEWSLETTER_BEAT_TICK_SECONDS": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = AppProcesses(env, tmp_path)
    try:
        _start(digest_id)  # committed; then the process "dies": nothing is queued
        app.start_worker("--concurrency", "2")
        # "ready." comes after the worker's own start-up recovery ran: it saw a fresh
        # send, not a stalled one, so it enqueued nothing.
        app.wait_ready()
        assert "stalled" not in app.log("worker"), app.log("worker")
        assert len(server.messages) == 0 and _rows(digest_id) == 5
        with session_scope() as session:  # SEND_STALL_SECONDS later
            session.execute(update(Digest).where(Digest.id == digest_id).values(progress_at=None))
        app._spawn("beat", "--loglevel", "INFO", name="beat")
        st = wait_status(app, digest_id)
        assert (st["total"], st["sent"]) == (23, 23)
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert sorted(counts) == sorted(EMAILS) and set(counts.values()) == {1}
    finally:
        app.stop()
        server.stop()
