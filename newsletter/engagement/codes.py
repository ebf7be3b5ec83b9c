"""The signed parts of a tracked link: who clicked (per reader) and which link (per digest).

A tracked link is `{BASE_URL}/c/{reader}/{link}`. `reader` is "<delivery id>.<MAC>", one
per-reader value the fast path fills in (digests/fields.READER) like the unsubscribe
token, so tracking adds one keyed BLAKE2b per message; `link` is "<digest id>.<n>.<MAC>",
constant per digest and written at compose time. Each part is checked on its own and the
delivery must belong to the link's digest, so a forged or altered link goes nowhere, and
the target is read from digest_links, never from the URL (no open redirect). Delivery id
0 (a test send, a preview) is a valid reader code that is never counted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from base64 import urlsafe_b64encode


class _Mac:
    def __init__(self, secret: str, person: bytes) -> None:
        self.key = hashlib.blake2b(secret.encode(), digest_size=32, person=person).digest()

    def mac(self, data: bytes) -> bytes:
        digest = hashlib.blake2b(data, key=self.key, digest_size=12).digest()
        return urlsafe_b64encode(digest).rstrip(b"=")


class ReaderCodes(_Mac):
    """`codes(delivery_id)` -> "<id>.<MAC>"; built once per worker, called per message."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret, b"nl-reader")

    def __call__(self, delivery_id: int) -> str:
        digits = b"%d" % max(delivery_id, 0)
        return digits.decode() + "." + self.mac(digits).decode()


class LinkCodes(_Mac):
    def __init__(self, secret: str) -> None:
        super().__init__(secret, b"nl-link")

    def __call__(self, digest_id: int, number: int) -> str:
        data = b"%d.%d" % (digest_id, number)
        return data.decode() + "." + self.mac(data).decode()


_READER = re.compile(r"(0|[1-9][0-9]{0,17})\.([A-Za-z0-9_-]{16})")
_LINK = re.compile(r"([1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,5})\.([A-Za-z0-9_-]{16})")


def read_reader_code(secret: str, code: str) -> int | None:
    """The delivery id of a reader code (0: a test send), or None when forged."""
    found = _READER.fullmatch(code)
    if found is None:
        return None
    digits = found.group(1).encode()
    if not hmac.compare_digest(ReaderCodes(secret).mac(digits), found.group(2).encode()):
        return None
    return int(digits)


def read_link_code(secret: str, code: str) -> tuple[int, int] | None:
    """(digest id, link number) of a link code, or None when forged."""
    found = _LINK.fullmatch(code)
    if found is None:
        return None
    data = f"{found.group(1)}.{found.group(2)}".encode()
    if not hmac.compare_digest(LinkCodes(secret).mac(data), found.group(3).encode()):
        return None
    return int(found.group(1)), int(found.group(2))
