"""The embedded broker (a folder of message files, workers/fsbroker.py): consumers
sharing one folder take every message exactly once, oldest first, from one listing of the
folder per backlog, while producers keep writing."""

from __future__ import annotations

import threading
from pathlib import Path

from kombu import Connection

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
    assert fsbroker._oldest_first(names, "mail.msg") == [
        "999_a.mail.msg",
        "1000_b.mail.msg",
        "1002_d.mail.msg",
    ]
