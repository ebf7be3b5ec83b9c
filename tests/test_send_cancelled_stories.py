"""A send cancelled part-way: nobody gets a story twice, and the readers it did not reach
still get its stories (issue: "a cancelled send gives its stories back").

Through the operator's CLI and a real worker and SMTP server: the first send is slowed by
SEND_RATE so the cancel lands mid-batch; the next `digest send` carries the cancelled
stories to exactly the readers the first did not reach.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.digests.compose import compose_digest
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    DigestVariant,
    MailingList,
    Subscriber,
    Subscription,
    utcnow,
)
from newsletter.sending.job import start_send
from newsletter.stories.drafts import StoryDraft
from newsletter.stories.store import store_stories
from tests.send_support import send_env, status, wait_status
from tests.services import AppProcesses, Received, SmtpServer, wait_until

READERS = 30
FIRST = ("Dam repairs finished ahead of winter", "Night trains to Lviv return")
LATER = "Schools reopen in the east"


def _setup(emails: list[str]) -> None:
    with session_scope() as session:
        mlist = MailingList(slug="news", name="The Newsroom Daily")
        session.add(mlist)
        session.flush()
        for i, email in enumerate(emails):
            sub = Subscriber(email=email, name=f"Reader {i}")
            session.add(sub)
            session.flush()
            session.add(Subscription(list_id=mlist.id, subscriber_id=sub.id, status="confirmed"))


def _stories(*titles: str, ago: timedelta = timedelta(minutes=1)) -> None:
    drafts = [
        StoryDraft(t, f"{t}: the lede.", [], source=t, published_at=utcnow() - ago) for t in titles
    ]
    with session_scope() as session:
        store_stories(session, drafts)


def _titles(message: Received) -> list[str]:
    text = message.message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    return [t for t in (*FIRST, LATER) if t in body]


def _got(server: SmtpServer) -> dict[str, list[str]]:
    """Every story title each reader received, once per time it arrived."""
    got: dict[str, list[str]] = {}
    for m in server.messages:
        for rcpt in m.rcpt_tos:
            got.setdefault(rcpt, []).extend(_titles(m))
    return got


def _digest_ids() -> list[int]:
    with session_scope() as session:
        return list(session.scalars(select(Digest.id).order_by(Digest.id)))


def test_cancelled_part_way_the_rest_get_its_stories_and_nobody_twice(
    database: str, data_dir: Path, tmp_path: Path
) -> None:
    emails = [f"r{i}@example.org" for i in range(READERS)]
    _setup(emails)
    _stories(*FIRST, ago=timedelta(minutes=5))
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, database, None)
    # Ten seconds of sending: time for the cancel command to start on a loaded machine.
    env |= {"NEWSLETTER_SEND_RATE": "3", "NEWSLETTER_SEND_BATCH_SIZE": "500"}
    app = AppProcesses(env, tmp_path)
    try:
        app.start_worker("--concurrency", "1")
        app.run("digest", "send", "--list", "news")
        first = _digest_ids()[-1]
        server.wait_for(lambda m: len(m) >= 4)
        app.run("sends", "cancel", str(first))
        wait_status(app, first, ("cancelled",))
        wait_until(
            lambda: (lambda st: st["sent"] + st["failed"] == READERS)(status(app, first)),
            30,
            "the cancelled batch to fold its rows",
            interval=0.5,
        )
        reached = set(_got(server))
        assert 0 < len(reached) < READERS

        _stories(LATER, ago=timedelta(0))
        app.run("digest", "send", "--list", "news")
        second = _digest_ids()[-1]
        assert second != first
        wait_status(app, second, ("sent",))
    finally:
        app.stop()
        server.stop()

    got = _got(server)
    assert set(got) == set(emails)  # everyone got something
    for email, titles in got.items():
        twice = [t for t, n in Counter(titles).items() if n > 1]
        assert not twice, f"{email} got {twice} twice"
        assert sorted(titles) == sorted((*FIRST, LATER)), (email, titles)
    # The readers the first send reached got only the new story the second time.
    second_mails = [m for m in server.messages if LATER in " ".join(_titles(m))]
    for m in second_mails:
        for rcpt in m.rcpt_tos:
            assert (_titles(m) == [LATER]) == (rcpt in reached), (rcpt, _titles(m))


def test_with_nothing_new_only_the_readers_not_reached_get_a_mail(
    sqlite_db: str, data_dir: Path
) -> None:
    """The next digest after a cancel holds only the cancelled stories: readers who had
    them are not in its ledger at all."""
    emails = [f"r{i}@example.org" for i in range(6)]
    _setup(emails)
    _stories(*FIRST)
    settings = get_settings()
    with session_scope() as session:
        mlist = session.scalars(select(MailingList)).one()
        first = compose_digest(session, settings, mlist)
        assert first is not None
        start_send(session, settings, first)
        rows = session.scalars(
            select(Delivery).where(Delivery.digest_id == first.id).order_by(Delivery.id)
        ).all()
        for row in rows[:2]:
            row.status = DeliveryStatus.sent
        for row in rows[2:]:
            row.status = DeliveryStatus.failed
        first.status = DigestStatus.cancelled
    with session_scope() as session:
        mlist = session.scalars(select(MailingList)).one()
        again = compose_digest(session, settings, mlist, now=utcnow() + timedelta(seconds=1))
        assert again is not None and again.story_ids == []  # nothing new: carried only
        start_send(session, settings, again)
        ledger = session.execute(
            select(Subscriber.email, Delivery.variant)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.digest_id == again.id)
        ).all()
    assert sorted(e for e, _ in ledger) == sorted(emails[2:])
    assert {v for _, v in ledger} == {0}


def _cancel_reaching(
    session: Session, settings: Settings, digest: Digest, reached: set[str]
) -> None:
    """Start the send and end it cancelled, having reached exactly these readers."""
    start_send(session, settings, digest)
    rows = session.execute(
        select(Delivery, Subscriber.email)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.digest_id == digest.id)
    ).all()
    for row, email in rows:
        row.status = DeliveryStatus.sent if email in reached else DeliveryStatus.failed
    digest.status = DigestStatus.cancelled


def test_two_cancelled_sends_in_a_row_each_reader_gets_what_they_missed(
    database: str, data_dir: Path
) -> None:
    emails = ["a@example.org", "b@example.org", "c@example.org", "d@example.org"]
    _setup(emails)
    settings = get_settings()
    _stories("First story", ago=timedelta(minutes=10))
    with session_scope() as session:
        mlist = session.scalars(select(MailingList)).one()
        one = compose_digest(session, settings, mlist, now=utcnow() - timedelta(minutes=9))
        assert one is not None
        _cancel_reaching(session, settings, one, {"a@example.org", "b@example.org"})
    _stories("Second story", ago=timedelta(minutes=8))
    with session_scope() as session:
        mlist = session.scalars(select(MailingList)).one()
        two = compose_digest(session, settings, mlist, now=utcnow() - timedelta(minutes=7))
        assert two is not None
        _cancel_reaching(session, settings, two, {"a@example.org", "c@example.org"})
    _stories("Third story", ago=timedelta(minutes=6))
    with session_scope() as session:
        mlist = session.scalars(select(MailingList)).one()
        three = compose_digest(session, settings, mlist, now=utcnow() - timedelta(minutes=5))
        assert three is not None
        start_send(session, settings, three)
        variant_of = dict(
            session.execute(
                select(Subscriber.email, Delivery.variant)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.digest_id == three.id)
            ).all()
        )
        texts = {0: three.text} | {
            v.number: v.text
            for v in session.scalars(
                select(DigestVariant).where(DigestVariant.digest_id == three.id)
            )
        }
    gets = {
        email: [t for t in ("First story", "Second story", "Third story") if t in texts[v]]
        for email, v in variant_of.items()
    }
    assert gets == {
        "a@example.org": ["Third story"],  # had the first and the second
        "b@example.org": ["Second story", "Third story"],  # had the first only
        "c@example.org": ["Third story"],  # got the first carried in the second
        "d@example.org": ["First story", "Second story", "Third story"],  # reached by none
    }
