"""The process that starts each send of bench/send.py, as the web console's does: a warm
project process holding only what starting a send needs (the bench's own process holds
the population it wrote, which is not the project's memory).

Reads a digest id per line on stdin; starts that send (the ledger's first chunk and the
batches enqueued, as `digest send` does) and answers "enqueued" on stdout.
"""

from __future__ import annotations

import sys

from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Digest
from newsletter.sending.job import start_send
from workers.tasks import enqueue_ranges, load_producer


def main() -> None:
    load_producer()  # as `newsletter web` does before it serves (web/app.py, serve_app)
    print("ready", flush=True)
    for line in sys.stdin:
        digest_id = int(line)
        with session_scope() as session:
            digest = session.get(Digest, digest_id)
            assert digest is not None
            ranges = start_send(session, get_settings(), digest)
        enqueue_ranges(digest_id, ranges)
        print("enqueued", flush=True)


if __name__ == "__main__":
    main()
