"""Segments: the expression language's errors name their column; every field selects the
right readers on SQLite and PostgreSQL (JSONB containment there); the count is of
confirmed, active readers; a send to a segment reaches exactly its readers through a real
worker and SMTP catcher; the CLI and API refuse a malformed expression in one line."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.models import (
    Delivery,
    Digest,
    MailingList,
    Subscriber,
    Subscription,
)
from newsletter.segments import actions
from newsletter.segments.compile import compile_segment
from newsletter.segments.language import SegmentError, parse
from tests.send_support import HTML, TEXT, send_env, wait_status
from tests.services import AppProcesses, SmtpServer

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TOKEN = "admin-token-for-the-tests-0123456789"


@pytest.mark.parametrize(
    ("expression", "column", "expected"),
    [
        ('attributes.city = "Kyiv" and', 29, "expected a condition"),
        ('attributes.city "Kyiv"', 17, "expected an operator"),
        ("attributes. = 1", 13, "expected an attribute name"),
        ('city = "Kyiv"', 1, "expected a condition"),
        ("attributes.age >= ", 19, "expected a value"),
        ('attributes.plan in ("a" "b")', 25, "expected ',' or ')'"),
        ('(status = "confirmed"', 22, "expected ')'"),
        ("in_list news", 9, "a list slug in double quotes"),
        ('attributes.city = "Kyiv" status', 26, "expected 'and', 'or' or the end"),
        ("signed_up > 30 days", 20, "expected 'ago'"),
        ("attributes.x = 1 ; drop table subscribers", 18, "unexpected character ';'"),
        ("", 1, "expected a condition"),
        ("signed_up > 2026-02-31", 13, "is not a date"),
    ],
)
def test_a_malformed_expression_names_its_column(
    expression: str, column: int, expected: str
) -> None:
    with pytest.raises(SegmentError) as caught:
        parse(expression)
    assert caught.value.column == column, caught.value.message
    assert caught.value.message.startswith(f"column {column}: ")
    assert expected in caught.value.message
    assert "\n" not in caught.value.message


def test_the_language_reads_its_forms() -> None:
    a = parse('attributes.city = "Kyiv" AND (attributes.age >= 30 or not attributes.vip exists)')
    b = parse('attributes.city = "Kyiv" and (attributes.age >= 30 or not attributes.vip exists)')
    assert a == b  # keywords in any case
    assert parse("signed_up > -30d") == parse("signed_up > 30 days ago")
    assert parse("signed_up > -2w") == parse("signed_up > 14 days ago")
    assert parse('attributes.name = "say \\"hi\\""').values == ('say "hi"',)  # type: ignore[union-attr]
    with pytest.raises(SegmentError, match="nested"):
        parse("not " * 40 + "attributes.x exists")


def _people(session) -> MailingList:  # type: ignore[no-untyped-def]
    """news: ana (Kyiv, age "34", pro, uk, every, confirmed 60 days ago, clicked 2 days ago,
    last delivery 10 days ago), bo (Lviv, age 25, free, en by default, weekly, confirmed 5
    days ago), cy (Kyiv, age "n/a", team, unconfirmed), di (no attributes, Kyiv zone,
    confirmed, also on other), ed (Kyiv, bounced address)."""
    news = MailingList(slug="news", name="News", track_clicks=True)
    other = MailingList(slug="other", name="Other")
    session.add_all([news, other])
    session.flush()
    people = {
        "ana": ({"city": "Kyiv", "age": "34", "plan": "pro"}, "uk", "Europe/Kyiv", "active"),
        "bo": ({"city": "Lviv", "age": 25, "plan": "free", "beta": True}, None, None, "active"),
        "cy": ({"city": "Kyiv", "age": "n/a", "plan": "team"}, "en", None, "active"),
        "di": ({}, None, "Europe/Kyiv", "active"),
        "ed": ({"city": "Kyiv"}, None, None, "bounced"),
    }
    ids = {}
    for name, (attrs, language, zone, status) in people.items():
        s = Subscriber(
            email=f"{name}@example.org",
            name=name,
            attributes=attrs,
            language=language,
            timezone=zone,
            status=status,
        )
        session.add(s)
        session.flush()
        ids[name] = s.id

    def sub(name: str, status: str, days: int, frequency: str = "every", lst=news) -> None:  # type: ignore[no-untyped-def]
        at = NOW - timedelta(days=days)
        session.add(
            Subscription(
                list_id=lst.id,
                subscriber_id=ids[name],
                status=status,
                created_at=at,
                confirmed_at=at if status == "confirmed" else None,
                frequency=frequency,
            )
        )

    sub("ana", "confirmed", 60)
    sub("bo", "confirmed", 5, "weekly")
    sub("cy", "unconfirmed", 1)
    sub("di", "confirmed", 20)
    sub("ed", "confirmed", 20)
    sub("di", "confirmed", 3, lst=other)
    sub("bo", "unsubscribed", 3, lst=other)
    session.get(Subscriber, ids["ana"]).last_click_at = NOW - timedelta(days=2)  # type: ignore[union-attr]
    digest = Digest(list_id=news.id, subject="s", html=HTML, text=TEXT, status="sent")
    session.add(digest)
    session.flush()
    session.add(
        Delivery(
            digest_id=digest.id,
            subscriber_id=ids["ana"],
            status="sent",
            updated_at=NOW - timedelta(days=10),
        )
    )
    session.add(
        Delivery(digest_id=digest.id, subscriber_id=ids["di"], status="failed", updated_at=NOW)
    )
    session.flush()
    return news


CASES = [
    ('attributes.city = "Kyiv"', {"ana", "cy", "ed"}),
    ('attributes.city != "Kyiv"', {"bo", "di"}),
    ('attributes.city in ("Lviv", "Odesa")', {"bo"}),
    ('attributes.city contains "YI"', {"ana", "cy", "ed"}),
    ("attributes.age >= 30", {"ana"}),  # "34" as text counts, "n/a" never matches
    ("attributes.age < 30", {"bo"}),
    ("attributes.age = 25", {"bo"}),
    ('attributes.age = "34"', {"ana"}),
    ("attributes.beta = true", {"bo"}),
    ("attributes.plan exists", {"ana", "bo", "cy"}),
    ("not attributes.city exists", {"di"}),
    ('attributes.plan > "pro"', {"cy"}),  # text order
    ('status = "confirmed"', {"ana", "bo", "di", "ed"}),
    ('status = "unconfirmed"', {"cy"}),
    ('language = "uk"', {"ana"}),
    ('language = "en"', {"bo", "cy", "di", "ed"}),  # unset: the default language
    ('timezone = "Europe/Kyiv"', {"ana", "di"}),
    ("timezone exists", {"ana", "di"}),
    ('frequency = "weekly"', {"bo"}),
    ("signed_up < 30 days ago", {"ana"}),
    ("signed_up >= -7d", {"bo", "cy"}),
    (f"signed_up = {(NOW - timedelta(days=5)).date()}", {"bo"}),
    (f"signed_up > {(NOW - timedelta(days=6)).date()}", {"bo", "cy"}),
    ("last_delivery exists", {"ana"}),
    ("not last_delivery exists", {"bo", "cy", "di", "ed"}),
    ("last_delivery < 7 days ago", {"ana"}),
    ("last_delivery > 7 days ago", set()),
    ("last_click > 3 days ago", {"ana"}),
    ('in_list "other"', {"di"}),
    ('not in_list "other"', {"ana", "bo", "cy", "ed"}),
    (
        '(attributes.city = "Kyiv" or in_list "other") and not status = "unconfirmed"',
        {"ana", "di", "ed"},
    ),
]


def test_each_field_selects_the_right_readers(database: str) -> None:
    with session_scope() as session:
        news = _people(session)
        base = (
            select(Subscriber.name)
            .select_from(Subscription)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscription.list_id == news.id)
        )
        wrong = {}
        for expression, want in CASES:
            cond = compile_segment(session, news, expression, now=NOW)
            got = set(session.scalars(base.where(cond)))
            if got != want:
                wrong[expression] = (got, want)
        assert not wrong
        if database.startswith("postgresql"):
            sql = str(
                base.where(compile_segment(session, news, 'attributes.city = "Kyiv"')).compile(
                    session.get_bind()
                )
            )
            assert "@>" in sql  # containment: the GIN index serves it


def test_fields_that_cannot_apply_are_clear_errors(database: str) -> None:
    with session_scope() as session:
        news = _people(session)
        news.track_clicks = False
        for expression, message in (
            ("last_click > 3 days ago", "column 1: last_click needs click tracking on list news"),
            ('in_list "nope"', "column 1: there is no list 'nope'"),
            ('status = "maybe"', "status is one of unconfirmed, confirmed, unsubscribed"),
            ("signed_up > 3", "signed_up compares with a date"),
            ("x = 1 or language = 3", "column 1: expected a condition"),
            ("attributes.a exists and language = 3", "column 25: language compares with text"),
        ):
            with pytest.raises(InvalidInput) as caught:
                compile_segment(session, news, expression, now=NOW)
            assert message in caught.value.message, (expression, caught.value.message)


def test_count_is_of_confirmed_active_readers_and_slugs_are_unique(database: str) -> None:
    settings = get_settings()
    with session_scope() as session:
        _people(session)
        actions.create(session, settings, "kyiv", "news", 'attributes.city = "Kyiv"', "Kyiv")
        # ana only: cy is unconfirmed and ed bounced.
        assert actions.get_count(session, settings, "kyiv").value["count"] == 1
        with pytest.raises(InvalidInput, match="exists already"):
            actions.create(session, settings, "kyiv", "news", "attributes.city exists")
        with pytest.raises(InvalidInput, match="column 1: expected a condition"):
            actions.update(session, settings, "kyiv", "true")
        assert actions.find_segment(session, "kyiv").expression == 'attributes.city = "Kyiv"'
        actions.update(session, settings, "kyiv", 'attributes.city in ("Kyiv", "Lviv")')
        assert actions.get_count(session, settings, "kyiv").value["count"] == 2
        rows = actions.list_segments(session, settings, "news", True).value
        assert [(r["slug"], r["count"]) for r in rows] == [("kyiv", 2)]
        actions.delete(session, settings, "kyiv")
        assert actions.list_segments(session, settings).value == []


def test_a_send_to_a_segment_reaches_exactly_its_readers(
    sqlite_db: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope() as session:
        mlist = MailingList(slug="news", name="The Newsroom Daily")
        session.add(mlist)
        session.flush()
        for i in range(24):
            city = ("Kyiv", "Lviv", "Odesa")[i % 3]
            s = Subscriber(email=f"r{i}@example.org", name=f"R{i}", attributes={"city": city})
            session.add(s)
            session.flush()
            status = "unconfirmed" if i == 3 else "confirmed"
            session.add(Subscription(list_id=mlist.id, subscriber_id=s.id, status=status))
        digest = Digest(list_id=mlist.id, subject="Today", html=HTML, text=TEXT)
        session.add(digest)
        session.flush()
        digest_id = digest.id
    server = SmtpServer().start()
    env = send_env(data_dir, server.url, sqlite_db, None)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = AppProcesses(env, tmp_path)
    try:
        bad = app.run(
            "segments", "create", "kyiv", "--list", "news", "--where", "attributes.city ==",
            check=False,
        )  # fmt: skip
        assert bad.returncode == 2 and bad.stdout == ""
        assert bad.stderr.strip().splitlines() == [
            'Error: column 18: expected a value: "text", a number, true, false, a date '
            "(2026-01-31) or 30 days ago, found '='"
        ]
        app.run("segments", "create", "kyiv", "--list", "news", "--where",
                'attributes.city = "Kyiv"')  # fmt: skip
        count = json.loads(app.run("segments", "count", "kyiv", "--json").stdout)
        assert count["count"] == 7  # r0 r6 r9 … r21 (r3 unconfirmed)
        listed = app.run("segments", "list").stdout
        assert listed.strip() == 'kyiv\tnews\tattributes.city = "Kyiv"'
        app.start_worker("--concurrency", "1")
        started = json.loads(
            app.run(
                "digest",
                "send",
                "--list",
                "news",
                "--segment",
                "kyiv",
                "--skip-preflight",
                "--json",
            ).stdout  # fmt: skip
        )
        assert started["id"] == digest_id and started["total"] == 7
        st = wait_status(app, digest_id)
        assert st["sent"] == 7
        counts = Counter(r for m in server.messages for r in m.rcpt_tos)
        want = {f"r{i}@example.org" for i in range(0, 24, 3) if i != 3}
        assert set(counts) == want and set(counts.values()) == {1}
        gone = app.run("segments", "delete", "nope", check=False)
        assert gone.returncode == 2 and "no segment called 'nope'" in gone.stderr
    finally:
        app.stop()
        server.stop()


def test_the_api_answers_a_malformed_expression_with_400_and_counts(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_ADMIN_TOKEN", TOKEN)
    from tests.conftest import reset_caches

    reset_caches()
    with session_scope() as session:
        _people(session)
    from newsletter.web.app import create_app

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app()) as client:
        bad = client.post(
            "/api/segments",
            json={"slug": "k", "list": "news", "where": 'attributes.city = "Kyiv" or'},
            headers=auth,
        )
        assert bad.status_code == 400
        assert bad.json()["detail"][0]["message"].startswith("column 28: expected a condition")
        made = client.post(
            "/api/segments",
            json={"slug": "k", "list": "news", "where": 'attributes.city = "Kyiv"'},
            headers=auth,
        )
        assert made.status_code == 201 and made.json()["list"] == "news"
        assert client.get("/api/segments/k/count", headers=auth).json()["count"] == 1
        assert client.get("/api/segments?count=true", headers=auth).json()[0]["count"] == 1
        assert client.get("/api/segments/nope", headers=auth).status_code == 404
        assert client.delete("/api/segments/k", headers=auth).status_code == 200
        assert client.get("/api/segments", headers=auth).json() == []


def test_a_send_at_a_time_to_a_segment_reaches_only_it(sqlite_db: str) -> None:
    """`digest send --segment S --at T`: scheduled with its segment; when beat finds it
    due, the ledger holds the segment's confirmed, active readers only."""
    from newsletter.sending import actions as sending
    from newsletter.sending.later import start_due

    settings = get_settings()
    with session_scope() as session:
        _people(session)
        actions.create(session, settings, "kyiv", "news", 'attributes.city = "Kyiv"')
        draft = Digest(
            list_id=actions.find_segment(session, "kyiv").list_id, subject="s", html=HTML, text=TEXT
        )
        session.add(draft)
        session.flush()
        digest_id = draft.id
        at = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        with pytest.raises(InvalidInput, match="no segment called 'nope'"):
            sending.schedule(session, settings, "news", digest_id, at, "nope")
        st = sending.schedule(session, settings, "news", digest_id, at, "kyiv").value
        assert st["status"] == "scheduled" and st["segment"] == "kyiv" and st["send_at"]
    started: list[int] = []
    assert (
        start_due(
            settings, lambda d, r: started.append(d), now=datetime.now(UTC) + timedelta(hours=2)
        )
        == 1
    )
    with session_scope() as session:
        names = set(
            session.scalars(
                select(Subscriber.name)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.digest_id == digest_id)
            )
        )
    assert names == {"ana"}  # cy is unconfirmed, ed bounced
