"""Sending at the reader's local time: one digest and one ledger whose rows are due at
local_time in each reader's zone (their own, else the `timezone` attribute when it is a
real zone, else the list's); rows not due yet are not sent, beat's send tick wakes them
when their time comes, a send waiting for later zones is not taken for stalled, and
nobody gets the digest twice."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Delivery, Digest, MailingList, Subscriber, Subscription
from newsletter.sending.job import recover_stalled, start_send
from newsletter.sending.localtime import instant, lead, wake_due
from newsletter.sending.schedule import run_due_schedules
from tests.send_support import HTML, TEXT, send_env, status, wait_status
from tests.services import AppProcesses, SmtpServer


def _list(local_time: str, zone: str, readers: dict[str, tuple[str | None, str | None]]) -> int:
    """A list at local_time with readers {name: (own zone, timezone attribute)}."""
    with session_scope() as session:
        mlist = MailingList(slug="news", name="News", timezone=zone, local_time=local_time)
        session.add(mlist)
        session.flush()
        for name, (own, attribute) in readers.items():
            s = Subscriber(
                email=f"{name}@example.org",
                name=name,
                timezone=own,
                attributes={"timezone": attribute} if attribute else {},
            )
            session.add(s)
            session.flush()
            session.add(Subscription(list_id=mlist.id, subscriber_id=s.id, status="confirmed"))
        return mlist.id


def _due() -> dict[str, datetime | None]:
    with session_scope() as session:
        rows = session.execute(
            select(Subscriber.name, Delivery.next_attempt_at).join(
                Subscriber, Subscriber.id == Delivery.subscriber_id
            )
        ).all()
        return {name: at for name, at in rows}


def test_rows_are_due_at_local_time_in_each_reader_s_zone(database: str) -> None:
    day = (datetime.now(UTC) + timedelta(days=2)).date()  # after the real clock: no worker
    list_id = _list(
        "07:00",
        "Europe/Kyiv",
        {
            "tokyo": ("Asia/Tokyo", None),
            "ny": (None, "America/New_York"),
            "mars": (None, "Mars/Olympus"),  # not a zone: the list's
            "plain": (None, None),
            "la": ("America/Los_Angeles", "Asia/Tokyo"),  # their own zone comes first
        },
    )
    want = {
        "tokyo": instant(day, "07:00", "Asia/Tokyo"),
        "ny": instant(day, "07:00", "America/New_York"),
        "mars": instant(day, "07:00", "Europe/Kyiv"),
        "plain": instant(day, "07:00", "Europe/Kyiv"),
        "la": instant(day, "07:00", "America/Los_Angeles"),
    }
    assert want["tokyo"] < want["plain"] < want["ny"] < want["la"]
    settings = get_settings()
    with session_scope() as session:
        digest = Digest(
            list_id=list_id, subject="s", html=HTML, text=TEXT, period_key=f"{day}T07:00+0200"
        )
        session.add(digest)
        session.flush()
        digest_id = digest.id
        at = want["tokyo"] + timedelta(minutes=1)
        ranges = start_send(session, settings, digest, now=at)
        assert digest.local_time == "07:00"
    assert ranges  # Tokyo's row is due at once: woken (its due time cleared) and enqueued
    assert _due() == {**want, "tokyo": None}

    with session_scope() as session:
        # Tokyo's batch ran; the rest waits for its time: not stalled, nothing enqueued.
        session.execute(
            update(Delivery).where(Delivery.next_attempt_at.is_(None)).values(status="sent")
        )
    with session_scope() as session:
        assert recover_stalled(session, settings, stall_seconds=0, now=at) == []
        assert wake_due(session, 100, at) == []
        assert session.get(Digest, digest_id).status == "sending"  # type: ignore[union-attr]
    with session_scope() as session:
        [(woken, woken_ranges)] = wake_due(session, 100, want["plain"])
        assert woken == digest_id and woken_ranges
    assert {n for n, d in _due().items() if d is None} == {"tokyo", "mars", "plain"}
    with session_scope() as session:
        assert wake_due(session, 100, want["plain"] + timedelta(minutes=1)) == []  # once
        assert wake_due(session, 100, want["la"])[0][0] == digest_id
    assert set(_due().values()) == {None}


def test_a_local_time_period_starts_when_the_first_zone_reaches_it(sqlite_db: str) -> None:
    """A daily 07:00 list in Kyiv (UTC+2): 07:00 in UTC+14 is 12 hours earlier."""
    list_id = _list("07:00", "Europe/Kyiv", {"kiritimati": ("Pacific/Kiritimati", None)})
    with session_scope() as session:
        mlist = session.get(MailingList, list_id)
        assert mlist is not None
        mlist.schedule = "0 7 * * *"
        from newsletter.models import Story

        session.add(
            Story(
                slug="s",
                title="T",
                lede="L",
                body="B",
                published_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
    day = date(2026, 12, 3)
    start = instant(day, "07:00", "Pacific/Kiritimati")
    assert lead("Europe/Kyiv", start) == timedelta(hours=12)
    started: list[int] = []
    settings = get_settings()
    assert (
        run_due_schedules(
            settings, lambda d, r: started.append(d), now=start - timedelta(minutes=5)
        )
        == 0
    )
    assert (
        run_due_schedules(
            settings, lambda d, r: started.append(d), now=start + timedelta(seconds=30)
        )
        == 1
    )
    assert (
        run_due_schedules(settings, lambda d, r: started.append(d), now=start + timedelta(hours=13))
        == 0
    )
    with session_scope() as session:
        [digest] = session.scalars(select(Digest)).all()
        assert digest.period_key == "2026-12-03T07:00+0200" and digest.local_time == "07:00"
    assert _due() == {"kiritimati": None}  # due at once, enqueued with the start


def test_readers_in_three_zones_each_get_it_at_their_time_once(
    sqlite_db: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a real worker and beat: UTC+14 and UTC are past their local time, UTC-12
    is 11 hours before it. The waiting rows stay queued while beat ticks (no stall
    recovery, no spinning); when their time comes (the test moves their due time to
    now instead of waiting 11 hours) beat's send tick wakes and enqueues them."""
    past = datetime.now(UTC) - timedelta(hours=1)
    local, day = past.strftime("%H:%M"), past.date()
    zones = {"east": "Etc/GMT-14", "utc": "UTC", "west": "Etc/GMT+12"}
    readers = {f"{z}{i}": (zone, None) for z, zone in zones.items() for i in range(3)}
    list_id = _list(local, "UTC", readers)
    with session_scope() as session:
        digest = Digest(
            list_id=list_id, subject="Today", html=HTML, text=TEXT, period_key=f"{day}T{local}+0000"
        )
        session.add(digest)
        session.flush()
        digest_id = digest.id
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, sqlite_db, None)
    env["NEWSLETTER_BEAT_TICK_SECONDS"] = "1"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = AppProcesses(env, tmp_path)
    try:
        app.start_worker("--concurrency", "1")
        started = json.loads(
            app.run(
                "digest",
                "send",
                "--list",
                "news",
                "--digest",
                str(digest_id),
                "--skip-preflight",
                "--json",
            ).stdout  # fmt: skip
        )
        assert started["total"] == 9
        server.wait_for(lambda m: len(m) >= 6)
        app._spawn("beat", "--loglevel", "INFO", name="beat")
        app.wait_log("worker", "workers.tasks.send_tick", count=6)
        st = status(app, digest_id)
        assert (st["status"], st["sent"], st["queued"]) == ("sending", 6, 3)
        got = {r for m in server.messages for r in m.rcpt_tos}
        assert not any(r.startswith("west") for r in got)
        assert "stalled" not in app.log("worker")
        with session_scope() as session:  # their time comes
            session.execute(
                update(Delivery)
                .where(Delivery.next_attempt_at.is_not(None))
                .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        st = wait_status(app, digest_id)
        assert st["sent"] == 9
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        assert set(counts) == {f"{n}@example.org" for n in readers}
        assert set(counts.values()) == {1}
        time.sleep(2)  # more ticks: nothing more is sent
        assert len(server.messages) == 9
        assert "stalled" not in app.log("worker")
    finally:
        app.stop()
        server.stop()
