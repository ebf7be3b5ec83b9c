"""A 5xx after DATA goes through the bounce policy exactly like a 5xx at RCPT.

Receivers often accept every RCPT and refuse only once they have the message: "550 5.1.1
user unknown" after the content is a hard bounce (the reader is suppressed), "554 5.7.1
message rejected as spam" is a policy refusal (our content or IP: the reader stays).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.db import session_scope
from newsletter.models import BounceEvent
from tests.send_support import populate, send_env, wait_status
from tests.services import AppProcesses, RecordingHandler, SmtpRules, SmtpServer

UNKNOWN = "gone@example.net"
SPAMMY = "strict@example.org"
REPLIES = {
    UNKNOWN: "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown",
    SPAMMY: "554 5.7.1 Message rejected: our filters classified it as spam",
}


class RefusesAfterData(RecordingHandler):
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> Any:
        for rcpt in envelope.rcpt_tos:
            if rcpt.lower() in REPLIES:
                return REPLIES[rcpt.lower()]
        return await super().handle_DATA(server, session, envelope)


def test_a_refusal_after_the_content_is_a_bounce_through_the_policy(
    database: str, data_dir: Path, tmp_path: Path
) -> None:
    good = [f"ok{i}@example.org" for i in range(8)]
    digest_id = populate([*good, UNKNOWN, SPAMMY])
    server = SmtpServer(SmtpRules())
    server.handler = RefusesAfterData(server.rules)
    server.controller.handler = server.handler
    server.start()
    app = AppProcesses(send_env(data_dir, server.url, database, None), tmp_path)
    try:
        app.start_worker("--concurrency", "1")
        app.run("digest", "send", "--list", "news")
        st = wait_status(app, digest_id)
        assert (st["sent"], st["bounced"], st["failed"], st["queued"]) == (8, 2, 0, 0), st
        people = {
            p["email"]: p for p in json.loads(app.run("subscribers", "list", "--json").stdout)
        }
        assert people[UNKNOWN]["status"] == "bounced"  # user unknown: suppressed
        assert people[SPAMMY]["status"] == "active"  # our content: the reader stays
        report = json.loads(app.run("bounces", "list", "--json").stdout)
        assert report["totals"]["hard"] == 1 and report["totals"]["policy"] == 1
        with session_scope() as session:
            kinds = sorted(k for (k,) in session.query(BounceEvent.kind).all())
        assert kinds == ["hard", "policy"]
    finally:
        app.stop()
        server.stop()
