"""The embedded broker (a folder of message files, workers/fsbroker.py): consumers
sharing one folder take every message exactly once, oldest first, from one listing of the
folder per backlog, while producers keep writing."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue
from kombu.message import Message

from workers import fsbroker


def _connection(folder: Path) -> Connection:
    options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),  # kombu's default is the working directory
    }
    (folder / "queue").mkdir(exist_ok=True)
    return Connection(transport=fsbroker.Transport, transport_options=options)


def test_consumers_sharing_a_folder_take_each_message_once(tmp_path: Path) -> None:
    total = 600
    taken: list[list[int]] = [[], []]
    written = threading.Event()

    def produce() -> None:
        with _connection(tmp_path) as conn:
            queue = conn.SimpleQueue("mail")
            for i in range(total):
                queue.put({"n": i})
            queue.close()
        written.set()

    def consume(mine: list[int]) -> None:
        with _connection(tmp_path) as conn:
            queue = conn.SimpleQueue("mail")
            while not (written.is_set() and sum(map(len, taken)) >= total):
                try:
                    message = queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                mine.append(message.payload["n"])
                message.ack()
            queue.close()

    threads = [threading.Thread(target=produce)]
    threads += [threading.Thread(target=consume, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(taken[0] + taken[1]) == list(range(total))  # none lost, none twice
    assert taken[0] and taken[1]
    assert not [p.name for p in (tmp_path / "queue").iterdir() if p.name.endswith(".msg")]


def test_a_backlog_comes_out_oldest_first_across_a_longer_timestamp() -> None:
    names = [
        "1000_b.mail.msg",
        "999_a.mail.msg",
        "1001_c.other.msg",
        "~partial",
        "1002_d.mail.msg",
    ]
    assert fsbroker._by_queue(names)["mail.msg"] == [
        "999_a.mail.msg",
        "1000_b.mail.msg",
        "1002_d.mail.msg",
    ]


def test_an_empty_queue_beside_a_backlog_does_not_list_the_folder_per_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker consumes its task queue and its remote control queue, which is nearly always
    empty. Each turn of the empty queue listed the whole backlog once per task taken;
    now a backlog costs a few listings, and a message that arrives on the quiet queue
    midway still comes out promptly."""
    total = 2000
    with _connection(tmp_path) as conn:
        backlog = conn.SimpleQueue("mail")
        for i in range(total):
            backlog.put({"n": i})
        backlog.close()
    listings = 0
    listdir = os.listdir

    def counted(path: str) -> list[str]:
        nonlocal listings
        listings += 1
        return listdir(path)

    monkeypatch.setattr(fsbroker.os, "listdir", counted)
    got: list[tuple[str, int, float]] = []
    published = 0.0
    with _connection(tmp_path) as conn:
        queues = [Queue("mail", routing_key="mail"), Queue("control", routing_key="control")]

        def on_message(body: dict[str, int], message: Message) -> None:
            got.append((message.delivery_info["routing_key"], body["n"], time.monotonic()))
            message.ack()

        with conn.Consumer(queues, callbacks=[on_message]), conn.Producer() as producer:
            while len(got) < total + 1:
                if len(got) == 100 and not published:
                    producer.publish({"n": -1}, routing_key="control", declare=[queues[1]])
                    published = time.monotonic()
                conn.drain_events(timeout=5)
    mail = [n for key, n, _ in got if key == "mail"]
    assert sorted(mail) == list(range(total))  # each once
    [(_, _, arrived)] = [item for item in got if item[0] == "control"]
    assert arrived - published < 1.0, f"the quiet queue's message came {arrived - published} s late"
    assert listings < 60, f"{listings} listings of the folder for {total} messages"


def test_a_queue_deleted_by_its_process_gets_no_more_messages(tmp_path: Path) -> None:
    with _connection(tmp_path) as conn:
        kept = Queue("kept", Exchange("news", "fanout"), channel=conn.default_channel)
        gone = Queue("gone", Exchange("news", "fanout"), channel=conn.default_channel)
        kept.declare()
        gone.declare()
        gone.delete()
        with conn.Producer() as producer:
            producer.publish({"n": 1}, exchange="news")
    written = sorted(p.name.split(".")[1] for p in (tmp_path / "queue").iterdir())
    assert written == ["kept"]
