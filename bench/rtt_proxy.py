"""A TCP proxy that puts a server `rtt/2` milliseconds away in each direction.

The kernel here has no netem and smtp-sink's own delays are whole seconds, so the send
benchmark puts this between the workers and the sink. Every chunk read from one side is
stamped with its arrival time and written to the other side `rtt/2` later: a byte stream
delayed, not a request/response lock-step, so pipelined commands stay pipelined and order
is kept (one FIFO per direction; the delay is the same for every chunk, so a FIFO is a
queue of due chunks in due order). A writer that falls behind pauses its reader
(backpressure) rather than buffering without bound.

    python bench/rtt_proxy.py --listen 127.0.0.1:PORT --to 127.0.0.1:PORT --rtt-ms 20

It prints "ready" once it listens. `noop_rtt()` measures an SMTP round trip through it
to the sink: it should read rtt ± 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import socket
import statistics
import sys
import time

HIGH_WATER = 4 * 2**20  # bytes waiting in a writer before its reader pauses
# The loop's epoll timeout is whole milliseconds rounded up, so a timer fires 0-1 ms late:
# wake half a millisecond early and send what is due within half a millisecond, which
# centres the delivery on the due time instead of 0.5 ms after it (per direction).
EARLY = 0.0005


class Direction:
    """One direction of one connection: chunks due at arrival + delay, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self.loop, self.delay = loop, delay
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.dest: asyncio.Transport | None = None
        self.source: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    def push(self, data: bytes | None) -> None:
        """A chunk (None: end of stream) arrived now; deliver it `delay` later."""
        self.queue.append((self.loop.time() + self.delay, data))
        if self.timer is None:
            self.timer = self.loop.call_at(self.queue[0][0] - EARLY, self.flush)

    def flush(self) -> None:
        self.timer = None
        if self.closed:
            return
        if self.dest is None:  # the upstream connection is not up yet: try again shortly
            self.timer = self.loop.call_later(0.0005, self.flush)
            return
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now + EARLY:
            _, data = self.queue.popleft()
            if data is None:
                self.closed = True
                self.dest.close()  # flushes what is buffered, then closes
                return
            self.dest.write(data)
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0] - EARLY, self.flush)
        if self.source is not None and self.dest.get_write_buffer_size() > HIGH_WATER:
            self.source.pause_reading()


class Side(asyncio.Protocol):
    """One socket: what it reads goes into `out`; what `into` holds is written to it."""

    def __init__(self, out: Direction, into: Direction) -> None:
        self.out, self.into = out, into

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.out.source = transport
        self.into.dest = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.out.push(data)

    def eof_received(self) -> bool:
        self.out.push(None)
        return True  # keep our side open until the delayed close reaches it

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.out.closed and (not self.out.queue or self.out.queue[-1][1] is not None):
            self.out.push(None)

    def pause_writing(self) -> None:
        pass  # flush() pauses the reader by the buffer size itself

    def resume_writing(self) -> None:
        src = self.into.source
        if src is not None and not src.is_closing():
            src.resume_reading()


async def serve(listen: tuple[str, int], upstream: tuple[str, int], rtt_ms: float) -> None:
    loop = asyncio.get_running_loop()
    delay = rtt_ms / 2000

    def accept() -> Side:
        up = Direction(loop, delay)  # client -> server
        down = Direction(loop, delay)  # server -> client
        client = Side(up, down)

        async def dial() -> None:
            try:
                await loop.create_connection(lambda: Side(down, up), *upstream)
            except OSError:
                if hasattr(client, "transport"):
                    client.transport.close()

        loop.create_task(dial())
        return client

    server = await loop.create_server(accept, *listen, backlog=1024)
    for sock in server.sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    print("ready", flush=True)
    await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def noop_rtt(port: int, rounds: int = 50) -> list[float]:
    """Round-trip times (ms) of an SMTP NOOP to the server at `port` (the sink, or this
    proxy in front of it): one line out, one reply back, `rounds` times on one session."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = s.makefile("rb")
        reader.readline()  # the greeting
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            s.sendall(b"NOOP\r\n")
            if not reader.readline().startswith(b"250"):
                raise RuntimeError("no 250 to NOOP")
            times.append((time.perf_counter() - t0) * 1000)
        s.sendall(b"QUIT\r\n")
        return times


def summary(times: list[float]) -> str:
    q = statistics.quantiles(times, n=20)
    return f"median {statistics.median(times):.2f} ms, p5 {q[0]:.2f}, p95 {q[-1]:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", type=_address, required=True)
    ap.add_argument("--to", type=_address, required=True)
    ap.add_argument("--rtt-ms", type=float, required=True)
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.listen, args.to, args.rtt_ms))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
