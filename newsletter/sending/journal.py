"""Where an SMTP accept lands first: cheap, immediate, and outliving the worker.

The ledger is written once per batch for speed, so between a message's "250 OK" and
that write the fact lives only here. A batch that takes over rows from a dead worker
asks the journal which of them were already accepted and does not send those again;
the one message per connection that was on the wire when a process died is the only
possible duplicate.

Redis (the broker in production) keeps a set per send, shared by all worker hosts.
The embedded default appends lines to a file in the data dir: O_APPEND writes of one
short line are atomic, and the page cache keeps them when the process is killed.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from redis import Redis


class Journal(Protocol):
    """Where a batch notes each accept before the ledger knows it (ledger._fold)."""

    def record(self, delivery_id: int) -> None:
        """Note one accept, at once and without a round trip; raises if it cannot."""
        ...

    def sync(self) -> None:
        """Make sure every record so far is kept; raises if one was not."""
        ...

    def accepted(self, ids: Collection[int]) -> set[int]:
        """Which of these deliveries were accepted (asked by a takeover)."""
        ...

    def forget(self, ids: Collection[int]) -> None:
        """These are in the ledger now (housekeeping)."""
        ...

    def drop(self) -> None:
        """The send is over: its journal goes."""
        ...


class _RawConnection(Protocol):
    """What RedisJournal uses of a redis-py connection: packed commands, read replies."""

    def send_packed_command(self, command: list[bytes], check_health: bool = ...) -> None: ...

    def read_response(self) -> object: ...

    def disconnect(self) -> None: ...


class RedisJournal:
    """SADD per accept, written to the socket at once without waiting for the reply.

    Once the command is on Redis's socket the fact no longer depends on this process;
    waiting for the reply per message would cost a round trip each. The replies are
    read (`sync`) before the ledger fold, so a Redis failure is noticed there.
    """

    def __init__(self, client: Redis, digest_id: int) -> None:
        self.client = client
        self.key = f"nl:journal:{digest_id}"
        key = self.key.encode()
        self._head = b"*3\r\n$4\r\nSADD\r\n$%d\r\n%s\r\n" % (len(key), key)
        self._conn: _RawConnection | None = None
        self._pending = 0

    def record(self, delivery_id: int) -> None:
        conn = self._conn
        if conn is None:
            # Narrowed to what is used here (redis-py types its connections loosely).
            pooled = self.client.connection_pool.get_connection("SADD")
            conn = self._conn = cast(_RawConnection, pooled)
        # The RESP bytes of SADD key id, packed here: redis-py's generic packer and its
        # per-command health check cost more than the write itself.
        value = b"%d" % delivery_id
        try:
            conn.send_packed_command(
                [self._head + b"$%d\r\n%s\r\n" % (len(value), value)], check_health=False
            )
        except Exception:
            self._discard()
            raise
        self._pending += 1
        if self._pending >= 500:
            self.sync()

    def sync(self) -> None:
        """Read the outstanding replies; raises if Redis failed to take them."""
        conn = self._conn
        if conn is None:
            return
        try:
            while self._pending:
                conn.read_response()
                self._pending -= 1
        except Exception:
            self._discard()
            raise

    def _discard(self) -> None:
        if self._conn is not None:
            try:
                self._conn.disconnect()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None
        self._pending = 0

    def accepted(self, ids: Collection[int]) -> set[int]:
        self.sync()
        if not ids:
            return set()
        order = list(ids)
        flags = self.client.smismember(self.key, order)
        return {i for i, f in zip(order, flags, strict=True) if f}

    def forget(self, ids: Collection[int]) -> None:
        self.sync()
        if ids:
            self.client.srem(self.key, *ids)

    def drop(self) -> None:
        self.sync()
        self.client.delete(self.key)


class FileJournal:
    def __init__(self, folder: Path, digest_id: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{digest_id}.log"
        self._fd: int | None = None

    def record(self, delivery_id: int) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, b"%d\n" % delivery_id)

    def sync(self) -> None:
        """Each append is already in the kernel's hands."""

    def accepted(self, ids: Collection[int]) -> set[int]:
        """Stream the file: memory stays flat however long the send is."""
        wanted = set(ids)
        found: set[int] = set()
        if not wanted or not self.path.exists():
            return found
        with self.path.open("rb") as fh:
            for line in fh:
                try:
                    value = int(line)
                except ValueError:
                    continue  # a torn last line of a killed writer
                if value in wanted:
                    found.add(value)
        return found

    def forget(self, ids: Collection[int]) -> None:
        """Append-only: once folded, the ledger says sent and the journal is not asked."""

    def drop(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
