"""Which hosts the service fetches from: never a name that exists nowhere, and in
production never this machine or a private network.

example.com/.net/.org and anything under .example, .test or .invalid are documentation
and test names (RFC 2606, RFC 6761). Nothing is fetched from them and nothing about them
is looked up in the public DNS: an address there is a placeholder someone forgot, said
at once.

Pages, feeds and pictures come from addresses other people choose (a feed's image, an
article's og:image, a redirect). In production (or with FETCH_PRIVATE_NETWORKS=false)
a host that resolves to a loopback, private, link-local or otherwise non-public address
is refused before the request, and so is every redirect's, so nothing inside the
network (a metadata service, an admin port) can be reached through a story. Checked at
connection time by an httpx request hook; a name that changes its answer between the
check and the connection (DNS rebinding) is not covered.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import httpx

NEVER_TLDS = ("example", "test", "invalid")
NEVER_DOMAINS = ("example.com", "example.net", "example.org")


def never_resolves(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name.rsplit(".", 1)[-1] in NEVER_TLDS or any(
        name == d or name.endswith("." + d) for d in NEVER_DOMAINS
    )


def private_address(host: str) -> str | None:
    """The first non-public address `host` resolves to, or None (also when it does not
    resolve: the fetch itself then says it cannot be reached)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global:
            return str(address)
    return None


def public_only(refuse: Callable[[str, str], Exception]) -> Callable[[httpx.Request], None]:
    """An httpx request hook that refuses (raising `refuse(url, reason)`) a request,
    or a redirect's, to a host with a non-public address."""

    def hook(request: httpx.Request) -> None:
        found = private_address(request.url.host)
        if found is not None:
            raise refuse(str(request.url), f"{request.url.host} is a private address ({found})")

    return hook
