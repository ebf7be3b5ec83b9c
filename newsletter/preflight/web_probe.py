"""The one-click unsubscribe route, asked over HTTP the way a mailbox provider asks it.

Only when this service's web app answers at BASE_URL (its /healthz, short timeout): the
POST carries the sample reader's token (subscription 0 exists nowhere, so nobody is
unsubscribed) and must get the one-click route's own answer to an unknown reader, a
plain-text 400, and not a login page, a CSRF refusal, a redirect or a 404/405. A real
reader's link is only fetched with GET, which never changes a subscription: a 200 shows
that the web app accepts this sender's tokens (same secret, same database).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from newsletter.preflight.dns_checks import reserved
from newsletter.preflight.findings import Finding, passed, problem

TIMEOUT_SECONDS = 3.0
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


def one_click(base_url: str, sample_url: str, reader_url: str | None) -> Finding:
    check = "one-click"
    host = urlsplit(base_url).hostname or ""
    if reserved(host) and host != "localhost":
        return passed(check, f"not asked: {host} is a reserved example name, not a web app")
    try:
        with httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
            try:
                health = client.get(f"{base_url}/healthz")
                ours = health.status_code == 200 and health.json().get("status") == "ok"
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                return problem(
                    check,
                    f"not checked: the web app did not answer at {base_url} "
                    f"({exc.__class__.__name__}); readers' one-click unsubscribe needs it "
                    "running there (`newsletter web`)",
                    blocking=False,
                )
            if not ours:
                return problem(
                    check,
                    f"not checked: {base_url}/healthz answered {health.status_code}, not this "
                    "service's web app; check NEWSLETTER_BASE_URL",
                    blocking=False,
                )
            answer = client.post(
                sample_url,
                content=ONE_CLICK_BODY,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            plain = answer.headers.get("content-type", "").startswith("text/plain")
            if not (answer.status_code in (200, 400) and plain):
                return problem(
                    check,
                    f"POST {sample_url} (body {ONE_CLICK_BODY}) was answered "
                    f"{answer.status_code} {answer.headers.get('content-type', '')}: mailbox "
                    "providers' one-click unsubscribe (RFC 8058) must work with no cookie, "
                    "session or CSRF token; check what sits in front of the web app",
                    blocking=True,
                )
            said = (
                f"the web app answers the one-click POST ({answer.status_code} for the sample "
                "reader)"
            )
            if reader_url is not None:
                page = client.get(reader_url)
                if page.status_code != 200:
                    return problem(
                        check,
                        f"the web app at {base_url} answered {page.status_code} to a reader's "
                        "unsubscribe link: it does not recognise this sender's links (another "
                        "NEWSLETTER_SECRET_KEY or database?)",
                        blocking=True,
                    )
                said += " and recognises a reader's link"
            return passed(check, said)
    except httpx.HTTPError as exc:
        return problem(
            check,
            f"not checked: {base_url} stopped answering ({exc.__class__.__name__})",
            blocking=False,
        )
