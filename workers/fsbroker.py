"""kombu's file-system transport with a message written whole before it is visible.

kombu creates the message file, then writes it; a worker polling the folder (every
0.1 s) can move and read the file between the two and die on an empty message
("Unrecoverable error: JSONDecodeError"). Here the message is written under a name the
reader skips (no ".<queue>.msg" suffix) and renamed into place, which is atomic.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
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


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make filesystem:// URLs use this transport (in every process: web, worker, CLI)."""
    TRANSPORT_ALIASES["filesystem"] = "workers.fsbroker:Transport"
