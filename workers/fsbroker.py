"""kombu's file-system transport with a message written whole before it is visible,
and a worker that takes its next task as soon as it has room for one.

kombu creates the message file, then writes it; a worker polling the folder (every
0.1 s) can move and read the file between the two and die on an empty message
("Unrecoverable error: JSONDecodeError"). Here the message is written under a name the
reader skips (no ".<queue>.msg" suffix) and renamed into place, which is atomic.

kombu also sleeps the whole polling interval when the worker may not take a message
(its prefetch is full: one unacknowledged task per process, acks late), not only when
the folder is empty: a two-process worker then ran at most two tasks per 0.1 s, about
18 confirmation mails a second, however many waited. While the prefetch is full the
transport looks again after ACK_POLL_SECONDS; that check reads no folder.

And kombu lists and sorts the whole folder for every message it takes, so a backlog of n
messages cost n listings of up to n names each: under a burst of sign-ups the worker's
consumer spent more than half a core listing the folder, and the web process's writes
waited on the folder's lock meanwhile. Here one listing serves every message it found,
for every queue the channel polls; the folder is read again when a queue has taken all
its messages of the last listing, or, for a queue that had none, when the listing is
RELIST_SECONDS old. (Without that a queue that is always empty, the worker's remote
control queue, listed the whole backlog of the task queue each time its turn came: once
per task taken.)

And kombu's table of an exchange's queues (a file in the control folder) could be read
empty while a queue was being bound, and a message published then went nowhere, silently:
- kombu creates the file by opening it for writing, which empties it before the lock
  is taken; here it is created without truncating and changed only under the lock;
- kombu keeps what a process has bound in one state for the whole process and writes the
  file only for the first binding, so another thread of the process could publish before
  that file held the queue (tests/test_file_broker.py lost a message in half the runs
  this way). Here a lookup also counts the queues this process has bound itself.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from queue import Empty
from time import monotonic, sleep
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.transport.filesystem import LOCK_EX, LOCK_SH, exchange_queue_t, lock, unlock
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

ACK_POLL_SECONDS = 0.005  # waiting for a running task's ack (cheap: no folder read)
RELIST_SECONDS = 0.05  # how stale a listing may be for a queue that found nothing in it


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per queue: the names the last listing found and no one has been seen taking yet.
        self._listed: dict[str, deque[str]] = {}
        self._listed_at = -1.0  # monotonic time of the last listing
        self._drained: set[str] = set()  # queues that took all their names of the last one

    def _get(self, queue: str) -> Any:  # type: ignore[override]
        """The oldest message of `queue`. Deleting its file is the claim: with several
        consumers only one unlink succeeds, and the one that opened it reads it."""
        if self.store_processed:
            return super()._get(queue)
        listed = self._listed.setdefault(queue, deque())
        if not listed and (
            queue in self._drained or monotonic() - self._listed_at >= RELIST_SECONDS
        ):
            self._list_folder()
        while listed:
            path = os.path.join(self.data_folder_in, listed.popleft())
            if not listed:
                self._drained.add(queue)
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                continue  # another consumer took it since the listing
            with f:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue  # taken by another consumer between our open and unlink
                try:
                    payload = f.read()
                except OSError as exc:
                    raise ChannelError(f"Cannot read file {path!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise Empty()

    def _list_folder(self) -> None:
        """One listing of the folder, oldest first, for every queue polled here."""
        found = _by_queue(os.listdir(self.data_folder_in))
        self._listed_at = monotonic()
        self._drained.clear()
        for queue, listed in self._listed.items():
            listed.clear()
            listed.extend(found.get(f"{queue}.msg", ()))

    def get_table(self, exchange: str) -> list[Any]:
        """The exchange's queues: the file's (every process's bindings) and the ones this
        process bound, which another of its threads may not have written yet."""
        file = self._exchange_file(exchange)
        try:
            with file.open("rb") as f:
                lock(f, LOCK_SH)
                try:
                    data = f.read()
                finally:
                    unlock(f)
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        table = _table(data)
        # The state's table keeps a queue this process deleted; its bindings do not.
        own = self.state.exchanges.get(exchange, {}).get("table", [])
        live = [_entry(m) for m in own if self.state.has_binding(m[2], exchange, m[0])]
        return table + [q for q in live if q not in table]

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        """kombu's, but the file is created without emptying it and read, changed and
        written under its lock."""
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        entry = exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            with os.fdopen(os.open(file, os.O_RDWR | os.O_CREAT, 0o644), "rb+", 0) as f:
                lock(f, LOCK_EX)
                try:
                    table = _table(f.read())
                    if entry not in table:
                        table.insert(0, entry)
                        f.seek(0)
                        f.write(str_to_bytes(dumps(table)))
                        f.truncate()
                finally:
                    unlock(f)
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc

    # kombu names the argument `message` in its base class, `payload` in this one.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"~{uuid.uuid4().hex}")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


def _table(data: bytes) -> list[Any]:
    """An exchange file's entries; an empty file is one a binding made and has not
    written yet."""
    return [exchange_queue_t(*q) for q in loads(bytes_to_str(data))] if data else []


def _entry(meta: Any) -> Any:
    """A binding of the process's state as a table entry (routing key, pattern, queue)."""
    return exchange_queue_t(*(value or "" for value in meta))


def _by_queue(names: list[str]) -> dict[str, list[str]]:
    """Message files by queue suffix ("<queue>.msg"), each oldest first by the time in its
    name (milliseconds, not padded: a shorter number is an earlier one)."""
    found: dict[str, list[str]] = {}
    for name in names:
        found.setdefault(name.partition(".")[2], []).append(name)
    for mine in found.values():
        mine.sort(key=lambda name: (name.find("_"), name))
    return found


class Transport(filesystem.Transport):
    Channel = Channel

    # As kombu.transport.virtual.Transport, whose signature differs from its own base.
    def drain_events(self, connection: Any, timeout: Any = None) -> None:  # type: ignore[override]
        """kombu's loop (virtual.Transport.drain_events), with a short wait while the
        prefetch is full instead of the folder's polling interval."""
        cycle = self.cycle
        assert cycle is not None  # made when the transport is
        started = monotonic()
        while True:
            try:
                cycle.get(self._deliver, timeout=timeout)
            except Empty:
                if timeout is not None and monotonic() - started >= timeout:
                    raise TimeoutError() from None  # socket.timeout, as kombu's
                full = any(not channel.qos.can_consume() for channel in self.channels)
                wait = ACK_POLL_SECONDS if full else self.polling_interval
                if timeout:
                    wait = min(wait, timeout)
                sleep(wait)
            else:
                return


def install() -> None:
    """Make filesystem:// URLs use this transport (in every process: web, worker, CLI)."""
    TRANSPORT_ALIASES["filesystem"] = "workers.fsbroker:Transport"
