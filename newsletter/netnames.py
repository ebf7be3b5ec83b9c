"""Host names that exist nowhere (RFC 2606, RFC 6761): asking for them only waits.

example.com/.net/.org and anything under .example, .test or .invalid are documentation
and test names. Nothing is fetched from them and nothing about them is looked up in the
public DNS: an address there is a placeholder someone forgot, said at once.
"""

from __future__ import annotations

NEVER_TLDS = ("example", "test", "invalid")
NEVER_DOMAINS = ("example.com", "example.net", "example.org")


def never_resolves(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name.rsplit(".", 1)[-1] in NEVER_TLDS or any(
        name == d or name.endswith("." + d) for d in NEVER_DOMAINS
    )
