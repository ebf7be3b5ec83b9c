"""The Redis transport every process uses for redis:// (workers/redisbroker.py) keeps one
client per channel: messages published from many threads at once all arrive, once."""

from __future__ import annotations

import threading

import pytest
from kombu import Connection

import workers.app  # noqa: F401 - installs the transport for redis:// URLs
from workers import redisbroker


def test_messages_published_from_many_threads_arrive_once_each(redis_url: str) -> None:
    threads, each = 8, 100
    with Connection(redis_url) as conn:
        assert isinstance(conn.default_channel, redisbroker.Channel)
        queue = conn.SimpleQueue("mail")

        def publish(first: int) -> None:
            own = conn.SimpleQueue("mail")  # each thread its own channel, as Celery's pool
            for n in range(first, first + each):
                own.put({"n": n})
            own.close()

        publishers = [threading.Thread(target=publish, args=(i * each,)) for i in range(threads)]
        for thread in publishers:
            thread.start()
        for thread in publishers:
            thread.join(30)
        assert queue.qsize() == threads * each
        got = []
        for _ in range(threads * each):
            message = queue.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
        assert sorted(got) == list(range(threads * each))
        with pytest.raises(queue.Empty):
            queue.get(timeout=0.2)
        queue.close()
