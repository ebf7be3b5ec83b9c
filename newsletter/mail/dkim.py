"""DKIM signing (RFC 6376, relaxed/relaxed) with `cryptography`, fast enough per message.

dkimpy signs correctly but parses and canonicalises the whole message every time
(~8 ms for 40 KB). The fast path knows the message's structure: it canonicalises the
constant parts of the body once per digest and hands this module a body hash and the
header fields it will emit, so signing is one canonicalisation of ~10 short headers and
one RSA or Ed25519 operation. dkimpy verifies every signature in the tests.

RSA-2048 signs with PKCS#1 v1.5 over SHA-256 (rsa-sha256); Ed25519 signs the SHA-256
digest of the same data (ed25519-sha256, RFC 8463).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.config import ConfigError, Settings

# `cryptography` is imported where a key is read or used, not with this module: a
# deployment without DKIM never loads its 14 MB library (5-6 MB of it read into each
# worker), nor pays its ~15 ms at every start of a command that could sign.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

_WSP = re.compile(rb"[ \t]+")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")

# Signed in this order; every one of them is present in each message of the fast path.
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


def relaxed_header(name: str, value: bytes) -> bytes:
    """RFC 6376 3.4.2: lower-case name, unfold, collapse whitespace, trim."""
    if b"\n" in value or b"\t" in value or b"  " in value:
        value = _WSP.sub(b" ", _FOLD.sub(b"", value))
    # else nothing is folded nor doubled (most values): no regular expression to run
    return name.lower().encode() + b":" + value.strip(b" ") + b"\r\n"


def relaxed_body_lines(data: bytes) -> bytes:
    """RFC 6376 3.4.4 for whole CRLF lines: collapse whitespace, drop it at line ends.

    Trailing empty lines are not removed here: the caller passes pieces of a body whose
    last piece (the closing MIME boundary) is never empty.
    """
    lines = data.split(b"\r\n")
    tail = lines.pop()  # b"" when data ends with CRLF
    out = [_WSP.sub(b" ", line).rstrip(b" ") for line in lines]
    joined = b"\r\n".join(out)
    if out:
        joined += b"\r\n"
    if tail:
        joined += _WSP.sub(b" ", tail).rstrip(b" ")
    return joined


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    # The signing call for this key's type, chosen once: `sign` runs once per message.
    _sign: Callable[[bytes], bytes] = dataclasses.field(init=False, repr=False, compare=False)
    algorithm: str = dataclasses.field(init=False, compare=False)

    def __post_init__(self) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ed25519, padding

        key = self.key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            algorithm = "ed25519-sha256"

            def sign(data: bytes) -> bytes:
                return key.sign(hashlib.sha256(data).digest())

        else:
            algorithm = "rsa-sha256"
            pad, digest = padding.PKCS1v15(), hashes.SHA256()

            def sign(data: bytes) -> bytes:
                return key.sign(data, pad, digest)

        object.__setattr__(self, "_sign", sign)
        object.__setattr__(self, "algorithm", algorithm)

    def sign(self, data: bytes) -> bytes:
        return self._sign(data)

    def public_dns_record(self) -> bytes:
        """The TXT record to publish at <selector>._domainkey.<domain>."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        pub = self.key.public_key()
        if isinstance(pub, ed25519.Ed25519PublicKey):
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)
        der = pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def load_key(path: Path, domain: str, selector: str) -> DkimKey:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    try:
        # Parsed once per version of the file: every system mail signs with it.
        stat = path.stat()
        key = _parsed_key(str(path), stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"NEWSLETTER_DKIM_KEY_FILE: cannot read a private key ({exc.__class__.__name__})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError("NEWSLETTER_DKIM_KEY_FILE: only RSA and Ed25519 keys are supported")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 1024:
        raise ConfigError("NEWSLETTER_DKIM_KEY_FILE: an RSA key needs at least 1024 bits")
    return DkimKey(domain=domain, selector=selector, key=key)


@lru_cache(maxsize=8)
def _parsed_key(path: str, mtime_ns: int, size: int) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def keys_from_settings(settings: Settings) -> list[DkimKey]:
    """The configured signing keys (none when DKIM is off); d= defaults to the From domain
    so the signature aligns with From for DMARC."""
    keys: list[DkimKey] = []
    domain = settings.dkim_domain or settings.sender_domain
    if settings.dkim_key_file:
        keys.append(
            load_key(settings.dkim_key_file, domain, settings.dkim_selector or "newsletter")
        )
    if settings.dkim_ed25519_key_file:
        keys.append(
            load_key(settings.dkim_ed25519_key_file, domain, settings.dkim_ed25519_selector or "ed")
        )
    return keys


class PreparedSignature:
    """signature_header's constant parts for one key and one list of signed header names,
    made once (a digest signs every message with the same), and both forms of each: as
    emitted, and relaxed-canonical as signed."""

    def __init__(self, key: DkimKey, names: Sequence[str]) -> None:
        self.key = key
        signed = b":".join(n.lower().encode() for n in names)
        self._head = (
            b" v=1; a="
            + key.algorithm.encode()
            + b"; c=relaxed/relaxed; d="
            + key.domain.encode()
            + b"; s="
            + key.selector.encode()
            + b"; t="
        )
        self._middle = b";\r\n\th=" + signed + b";\r\n\tbh="
        self._tail = b";\r\n\tb="
        # relaxed_header on the whole value, piece by piece: no piece ends in white space,
        # so unfolding and collapsing each alone gives the same bytes.
        self._canon_head = relaxed_header("dkim-signature", self._head)[:-2]
        self._canon_middle = _relaxed_piece(self._middle)
        self._canon_tail = _relaxed_piece(self._tail)

    def header(self, canonical_headers: bytes, body_hash: bytes, timestamp: int) -> bytes:
        """The `DKIM-Signature: ...\\r\\n` line over headers already relaxed-canonical."""
        t = b"%d" % timestamp
        bh = base64.b64encode(body_hash)
        data = canonical_headers + self._canon_head + t + self._canon_middle + bh
        sig = base64.b64encode(self.key.sign(data + self._canon_tail))
        folded = b"\r\n\t".join(sig[i : i + 72] for i in range(0, len(sig), 72))
        emitted = self._head + t + self._middle + bh + self._tail
        return b"DKIM-Signature:" + emitted + folded + b"\r\n"


def _relaxed_piece(value: bytes) -> bytes:
    return _WSP.sub(b" ", _FOLD.sub(b"", value))


def signature_header(
    key: DkimKey,
    headers: Sequence[tuple[str, bytes]],
    body_hash: bytes,
    timestamp: int,
) -> bytes:
    """A complete `DKIM-Signature: ...\\r\\n` line over `headers` (name, raw value) in order.

    The header is emitted folded exactly as it was canonicalised for signing, with the
    b= value appended last, so a verifier that strips b= sees the signed bytes.
    """
    prepared = PreparedSignature(key, [n for n, _ in headers])
    data = b"".join(relaxed_header(n, v) for n, v in headers)
    return prepared.header(data, body_hash, timestamp)


# Signed when present, for mail built with the standard library (confirmations, welcome
# and other system mail); the digest fast path signs its own fixed list above.
SIGN_IF_PRESENT = (*SIGNED_HEADERS, "content-transfer-encoding", "reply-to", "auto-submitted")
_FIELD_BREAK = re.compile(rb"\r\n(?![ \t])")


def sign_message(raw: bytes, keys: Sequence[DkimKey], timestamp: int) -> bytes:
    """`raw` (CRLF line ends, as `EmailMessage.as_bytes()` with the SMTP policy gives it)
    with a DKIM-Signature per key in front; `raw` itself when there are no keys."""
    if not keys:
        return raw
    head, _, body = raw.partition(b"\r\n\r\n")
    fields: dict[str, bytes] = {}
    for field in _FIELD_BREAK.split(head):
        name, sep, value = field.partition(b":")
        key = name.decode("ascii", "replace").strip().lower()
        if sep and key in SIGN_IF_PRESENT and key not in fields:
            fields[key] = value
    headers = [(name, fields[name]) for name in SIGN_IF_PRESENT if name in fields]
    canonical = relaxed_body_lines(body if body.endswith(b"\r\n") else body + b"\r\n")
    canonical = canonical.rstrip(b"\r\n") + b"\r\n" if canonical.strip() else b""
    body_hash = hashlib.sha256(canonical).digest()
    return b"".join(signature_header(k, headers, body_hash, timestamp) for k in keys) + raw
