"""Sunset: readers who stopped clicking are asked "Still want <list>?" once, a click or
"Keep me subscribed" answers, and silence past the grace unsubscribes with the reason
"sunset". Beat's task runs in this process with a controllable `now`, mailing the real
SMTP catcher; the keep page is the real app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lxml.html
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.engagement.record import Click, record_click
from newsletter.engagement.sunset import plan
from newsletter.models import Delivery, Digest, MailingList, Subscriber, Subscription
from tests.conftest import reset_caches
from tests.send_support import send_env
from tests.services import SmtpServer
from tests.test_engagement import _seen

T0 = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
DAY = timedelta(days=1)
READERS = ("quiet", "clicker", "gone", "late", "keeper")


@pytest.fixture
def smtp(database: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    for name, value in send_env(data_dir, server.url, database, None).items():
        monkeypatch.setenv(name, value)
    reset_caches()
    try:
        yield server
    finally:
        server.stop()


def _world(track_clicks: bool = True) -> dict[str, int]:
    """A list asking after 3 digests; 3 sent digests (T0, T0+1d, T0+2d). "quiet" and
    "keeper" got all three and never clicked, "clicker" clicked after the second, "gone"
    left before, "late" joined for the last two only."""
    with session_scope() as session:
        mlist = MailingList(
            slug="daily", name="The Daily", track_clicks=track_clicks, sunset_after=3
        )
        session.add(mlist)
        session.flush()
        ids: dict[str, int] = {"list": mlist.id}
        for name in READERS:
            reader = Subscriber(
                email=f"{name}@example.org",
                name=name.title(),
                language="uk" if name == "keeper" else None,
            )
            session.add(reader)
            session.flush()
            status = "unsubscribed" if name == "gone" else "confirmed"
            sub = Subscription(
                list_id=mlist.id, subscriber_id=reader.id, status=status, confirmed_at=T0 - DAY
            )
            session.add(sub)
            session.flush()
            ids[name] = sub.id
            ids[f"{name}-reader"] = reader.id
        for n in range(3):
            digest = Digest(
                list_id=mlist.id, subject=f"D{n}", status="sent", started_at=T0 + n * DAY
            )
            session.add(digest)
            session.flush()
            ids[f"digest{n}"] = digest.id
            for name in READERS:
                if name == "late" and n == 0:
                    continue
                session.add(
                    Delivery(
                        digest_id=digest.id,
                        subscriber_id=ids[f"{name}-reader"],
                        status="sent",
                        updated_at=T0 + n * DAY,
                    )
                )
    _click(ids, "clicker", T0 + DAY + timedelta(hours=3), digest=1)
    return ids


def _click(ids: dict[str, int], name: str, at: datetime, digest: int = 2) -> str | None:
    target = Click(
        "https://paper.example/",
        ids[f"digest{digest}"],
        1,
        None,
        ids["list"],
        ids[f"{name}-reader"],
        at - timedelta(hours=1),
    )
    with session_scope() as session:
        return record_click(session, get_settings(), target, _seen(at=at)).value


def _sweep(at: datetime) -> dict[str, int]:
    from workers.tasks import sunset_sweep

    return sunset_sweep(at.isoformat())  # type: ignore[no-any-return]


def _sub(sub_id: int) -> Subscription:
    with session_scope() as session:
        sub = session.get(Subscription, sub_id)
        assert sub is not None
        session.expunge(sub)
        return sub


def test_quiet_readers_are_asked_once_answer_or_leave(smtp: SmtpServer) -> None:
    ids = _world()
    settings = get_settings()
    asked_at = T0 + 2 * DAY + timedelta(hours=5)
    assert _sweep(asked_at) == {"asked": 2, "ended": 0, "failed": 0}
    got = sorted(r for m in smtp.messages for r in m.rcpt_tos)
    assert got == ["keeper@example.org", "quiet@example.org"]
    message = smtp.to("quiet@example.org")[0].message
    assert message["Subject"] == "Still want The Daily?"
    assert str(message["List-Unsubscribe"]).strip().startswith(f"<{settings.base_url}/unsubscribe/")
    html = message.get_body(("html",)).get_content()
    hrefs = [a.get("href") for a in lxml.html.document_fromstring(html).iter("a")]
    keep_url = next(h for h in hrefs if "/sunset/" in h)
    assert any("/preferences/p2." in h for h in hrefs)
    assert keep_url in message.get_body(("plain",)).get_content()
    assert _sub(ids["quiet"]).sunset_asked_at == asked_at
    assert _sub(ids["clicker"]).sunset_asked_at is None
    assert _sub(ids["late"]).sunset_asked_at is None

    # Not twice: the next sweeps ask nobody again.
    assert _sweep(asked_at + timedelta(hours=1))["asked"] == 0
    assert len(smtp.messages) == 2

    # "keeper" presses the button: the GET changes nothing, the POST keeps them.
    from newsletter.web.app import create_app

    # "keeper" reads Ukrainian: the question comes in Ukrainian, the page too.
    keeper_mail = smtp.to("keeper@example.org")[0].message
    assert keeper_mail["Subject"] == "Досі бажаєте отримувати The Daily?"
    keeper = keeper_mail.get_body(("plain",)).get_content()
    assert "Щоб і далі отримувати The Daily" in keeper
    found = re.search(r"(/sunset/\S+)", keeper)
    assert found is not None
    path = found.group(1)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        page = client.get(path)
        assert page.status_code == 200 and "Залишити підписку" in page.text
        assert _sub(ids["keeper"]).sunset_asked_at is not None
        done = client.post(path)
        assert done.status_code == 200 and "Ваша підписка залишається" in done.text
        english = client.get(path + "?lang=en")
        assert "Keep me subscribed" in english.text
        assert client.get(re.sub(r"\.[^.]+$", ".forged0000000000000000", path)).status_code == 404
    assert _sub(ids["keeper"]).sunset_asked_at is None
    assert _sub(ids["quiet"]).sunset_asked_at == asked_at


def test_silence_past_the_grace_unsubscribes_with_reason_sunset(smtp: SmtpServer) -> None:
    ids = _world()
    asked_at = T0 + 2 * DAY + timedelta(hours=5)
    assert _sweep(asked_at)["asked"] == 2
    grace = get_settings().sunset_grace_days
    # "keeper" clicks a link during the grace: the question is answered.
    assert _click(ids, "keeper", asked_at + DAY) is None
    assert _sub(ids["keeper"]).sunset_asked_at is None
    # A day before the grace ends: nothing yet.
    assert _sweep(asked_at + (grace - 1) * DAY)["ended"] == 0
    assert _sub(ids["quiet"]).status == "confirmed"
    result = _sweep(asked_at + grace * DAY + timedelta(minutes=1))
    assert result["ended"] == 1
    quiet = _sub(ids["quiet"])
    assert (quiet.status, quiet.unsubscribe_reason) == ("unsubscribed", "sunset")
    assert _sub(ids["keeper"]).status == "confirmed"
    gone = _sub(ids["gone"])  # left earlier: never touched
    assert gone.status == "unsubscribed" and gone.unsubscribe_reason is None
    assert gone.sunset_asked_at is None
    assert "gone@example.org" not in [r for m in smtp.messages for r in m.rcpt_tos]
    # "keeper" answered with a click: asked again only after 3 more quiet digests.
    assert _sweep(asked_at + grace * DAY + DAY)["asked"] == 0


def test_a_machine_click_is_no_answer(smtp: SmtpServer) -> None:
    ids = _world()
    asked_at = T0 + 2 * DAY + timedelta(hours=5)
    _sweep(asked_at)
    target = Click(
        "https://paper.example/", ids["digest2"], 1, None, ids["list"], ids["quiet-reader"], None
    )
    with session_scope() as session:
        seen = _seen(at=asked_at + DAY, method="HEAD")
        assert record_click(session, get_settings(), target, seen).value == "head"
    assert _sub(ids["quiet"]).sunset_asked_at == asked_at
    with session_scope() as session:
        reader = session.get(Subscriber, ids["quiet-reader"])
        assert reader is not None and reader.last_click_at is None


def test_no_sunset_without_click_tracking(smtp: SmtpServer) -> None:
    _world(track_clicks=False)
    with session_scope() as session:
        found = plan(session, get_settings(), T0 + 10 * DAY)
    assert (found.ask, found.end, found.skipped_lists) == ([], [], ["daily"])
    assert _sweep(T0 + 10 * DAY)["asked"] == 0
    assert smtp.messages == []
    with session_scope() as session:
        assert all(s.sunset_asked_at is None for s in session.scalars(select(Subscription)).all())
