"""The Redis transport every process uses for redis:// (workers/redisbroker.py) keeps one
client per channel: messages published from many threads at once all arrive, once."""

from __future__ import annotations

import threading

import pytest
from kombu import Connection
from redis import exceptions as redis_exceptions

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


def test_a_channel_closed_after_its_connection_does_not_stop_the_worker(redis_url: str) -> None:
    """Celery's consumer, reconnecting after Redis restarted, closed a channel whose pool
    was dropped (kombu's _disconnect_pools) after its transport had lost its connection;
    putting back the unacknowledged task then raised AttributeError out of kombu, and
    the worker stopped ("Unrecoverable error"). Seen once in a full test run."""
    conn = Connection(redis_url)
    queue = conn.SimpleQueue("mail")
    queue.put({"n": 1})
    held = queue.get(timeout=5)  # not acknowledged: the close tries to put it back
    channel = conn.default_channel
    channel._disconnect_pools()
    conn.transport.client = None  # as kombu leaves a transport it closed
    with pytest.raises(redis_exceptions.ConnectionError):
        with channel.conn_or_acquire():
            pass
    assert held.payload == {"n": 1}
    # The close path itself: it ignores connection errors; an AttributeError went through.
    conn.maybe_close_channel(channel)
