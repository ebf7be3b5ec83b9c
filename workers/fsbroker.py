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
waited on the folder's lock meanwhile. Here one listing serves every message it found;
the folder is read again when they are all taken.
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
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

ACK_POLL_SECONDS = 0.005  # waiting for a running task's ack (cheap: no folder read)


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per queue: the names the last listing found and no one has been seen taking yet.
        self._listed: dict[str, deque[str]] = {}

    def _get(self, queue: str) -> Any:  # type: ignore[override]
        """The oldest message of `queue`. Deleting its file is the claim: with several
        consumers only one unlink succeeds, and the one that opened it reads it."""
        if self.store_processed:
            return super()._get(queue)
        listed = self._listed.setdefault(queue, deque())
        if not listed:
            listed.extend(_oldest_first(os.listdir(self.data_folder_in), f"{queue}.msg"))
        while listed:
            path = os.path.join(self.data_folder_in, listed.popleft())
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


def _oldest_first(names: list[str], queue_suffix: str) -> list[str]:
    """The queue's message files by the time in their names (milliseconds, not padded:
    a shorter number is an earlier one)."""
    mine = [name for name in names if name.partition(".")[2] == queue_suffix]
    mine.sort(key=lambda name: (name.find("_"), name))
    return mine


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
