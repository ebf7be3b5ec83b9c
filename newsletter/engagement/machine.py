"""Machines told apart from people, as far as their traces allow.

Opens and clicks are not all people: mailbox providers fetch images through proxies and
security gateways follow every link of a message before the reader sees it. A machine
click still redirects (a scanner that gets a 404 may quarantine the mail) but it does not
count as the reader's interest: it does not set Subscriber.last_click_at, does not stop a
sunset, and the console shows it apart.

The rules, each a function below with a test (tests/test_engagement.py):

1. `head`: a HEAD request. Browsers GET links; scanners check them with HEAD.
2. `scanner_agent`: a User-Agent of a known security scanner or preview fetcher
   (Barracuda, Mimecast, Proofpoint, Microsoft Safe Links and "Microsoft Office"
   prefetch, Symantec/Broadcom, Trend Micro, Cisco IronPort, FireEye, Sophos, Bing
   preview, generic bot/crawler/spider words).
3. `image_proxy` (opens only): Google's image proxy (GoogleImageProxy), Yahoo's and
   similar: they fetch the pixel once, on the provider's schedule, for every reader.
4. `apple_privacy` (opens only): Apple Mail Privacy Protection fetches every remote
   image of every message from Apple's 17.0.0.0/8 range, with the bare user agent
   "Mozilla/5.0" and without cookies, whether or not the reader opens it.
5. `too_soon` (clicks): a click within SCANNER_SECONDS of the message's delivery: no
   person reads and clicks that fast; gateways that scan on arrival do.
6. `burst` (clicks): more than one link of the same message clicked within the same
   second (BURST_SECONDS): a person follows one link at a time; a scanner follows all.
   Decided in engagement/record.py, which also re-marks the earlier clicks of the burst.

Privacy: the address and the user agent are looked at here, at that moment, and never
stored: an Engagement row holds only the verdict.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime

SCANNER_SECONDS = 10
BURST_SECONDS = 1

_SCANNERS = re.compile(
    r"barracuda|mimecast|proofpoint|ppops|safelinks|safe ?links|microsoft office"
    r"|ms-office|microsoft-?url|msoffice|office365|symantec|broadcom|messagelabs"
    r"|trend ?micro|ironport|cisco|fireeye|trellix|sophos|forcepoint|zscaler"
    r"|bingpreview|\bbot\b|bot/|crawler|spider|scanner|linkcheck|urlscan",
    re.IGNORECASE,
)
_IMAGE_PROXIES = re.compile(
    r"googleimageproxy|ggpht\.com|yahoomailproxy|yahoo! slurp|outlook-ios-image|"
    r"mail\.ru_bot|yandex\.?images?",
    re.IGNORECASE,
)
_APPLE = ipaddress.ip_network("17.0.0.0/8")


@dataclass(frozen=True)
class Request:
    """What the heuristic sees of one request; built per request, never stored."""

    kind: str  # "click" or "open"
    method: str
    user_agent: str
    address: str | None  # the client's IP address as the proxy in front reports it
    has_cookies: bool
    at: datetime
    delivered_at: datetime | None  # when the message was sent (Delivery.updated_at)


def head(request: Request) -> bool:
    return request.method.upper() == "HEAD"


def scanner_agent(request: Request) -> bool:
    return bool(_SCANNERS.search(request.user_agent))


def image_proxy(request: Request) -> bool:
    return request.kind == "open" and bool(_IMAGE_PROXIES.search(request.user_agent))


def _apple_address(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address) in _APPLE
    except ValueError:
        return False


def apple_privacy(request: Request) -> bool:
    if request.kind != "open":
        return False
    bare_agent = request.user_agent.strip() in ("", "Mozilla/5.0")
    return _apple_address(request.address) or (bare_agent and not request.has_cookies)


def too_soon(request: Request) -> bool:
    if request.kind != "click" or request.delivered_at is None:
        return False
    return 0 <= (request.at - request.delivered_at).total_seconds() < SCANNER_SECONDS


RULES = (head, scanner_agent, image_proxy, apple_privacy, too_soon)


def verdict(request: Request) -> str | None:
    """The name of the first rule that says "machine", or None for a person (so far:
    the burst rule looks at the clicks around it, engagement/record.py)."""
    for rule in RULES:
        if rule(request):
            return rule.__name__
    return None
