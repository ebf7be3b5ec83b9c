"""Parse a bounce, complaint or auto-reply into one result per failed recipient.

Order of attempts, most reliable first:

1. ARF feedback reports (RFC 5965): a reader complaint or a DMARC failure report; also
   as mailbox providers really send them (report part as text/plain, Feedback-Type in any
   case or missing) and non-ARF feedback-loop reports with the message attached.
2. RFC 3464 DSNs: ``message/delivery-status`` fields (also when an MTA pastes them into a
   text part). A final report (Action: failed) whose text says the user is unknown is
   hard whatever its status digit.
3. Amazon SES JSON notifications sent by e-mail (plain, in an SNS envelope, folded).
4. Auto-replies (RFC 3834, vacation / out-of-office), once it is clear the message is not
   a bounce: Exim marks its bounces ``Auto-Submitted: auto-replied`` too.
5. Free-text bounces (Postfix, Exim, qmail, Exchange, Gmail...): recipient from
   X-Failed-Recipients, flufl.bounce, or the addresses the text names; reason from the
   SMTP reply lines.

``analyse`` never raises: a message that cannot be understood yields ``[]``.
"""

from __future__ import annotations

import email
import email.header
import email.policy
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses
from typing import Any

from newsletter.bounces.classify import Kind, classify, find_status, reason_from_text
from newsletter.mail.verp import PREFIX, verp_token
from newsletter.subscriptions.addresses import domain_of

log = logging.getLogger(__name__)
MAX_BYTES = 2_000_000  # bigger messages are cut: the verdict is always in the first part

_ADDR = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# "<user@example.net>: host said ..." / "user@example.net:" - how Postfix, qmail and Exim
# introduce the failed address; preferred over any address merely mentioned in the text.
_LEADING_ADDR = re.compile(
    r"(?m)(?<=^<)" + _ADDR.pattern + r"(?=>:)|(?<=^)" + _ADDR.pattern + r"(?=:)"
)
_ORIGINAL_MARKERS = re.compile(
    r"^.*(?:this is a copy of the (?:body of the )?message"
    r"|original message (?:follows|headers? follow)|message headers follow"
    r"|below this line is a copy|-{3,} ?original (?:message|mail)\b"
    r"|header of the original message|unsent message (?:below|follows)|original mail as follows"
    r"|message text follows|included below is the original|headers of your message follow"
    r"|-+ ?(?:returned|undelivered) message ?-+).*$",
    re.IGNORECASE | re.MULTILINE,
)
# A copy of the original's header block pasted without any marker: trace headers and
# more header lines. Its Received-SPF, DKIM-Signature and X-Spam lines would otherwise
# read as the receiver's words ("spf", "spam").
_PASTED_HEADERS = re.compile(
    r"^(?:Return-Path|Received|X-Received|DKIM-Signature|ARC-Seal|Received-SPF"
    r"|Authentication-Results):[^\n]*\n(?:[ \t][^\n]*\n)*[A-Za-z][A-Za-z0-9-]*:",
    re.MULTILINE,
)
_DAEMON = re.compile(
    r"^(?:mailer-daemon|post_?master|mail-daemon|maildelivery|mdaemon|"
    r"double-bounce|bounce|bounces|mail\.delivery|noreply|no-reply)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status|failure|failed|notification|has failed)|returned mail"
    r"|mail delivery|failure notice|non[- ]?delivery|could not be delivered|delivery problem"
    r"|mail system error|rejected|not delivered|failed delivery|delivery report",
    re.IGNORECASE,
)
_AUTOREPLY_SUBJECT = re.compile(
    r"out of (?:the )?office|vacation|auto(?:matic|matisk)?[- ]?(?:reply|response|answer)"
    r"|autorespon|abwesenheit|away from (?:my|the) (?:desk|office)|on holiday|on leave"
    r"|absence|r[eé]ponse automatique|risposta automatica|自動応答|不在",
    re.IGNORECASE,
)
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "x-actual-recipient")
_DSN_FIELDS = frozenset(
    {
        *_RECIPIENT_FIELDS,
        "action",
        "status",
        "diagnostic-code",
        "remote-mta",
        "last-attempt-date",
        "will-retry-until",
    }
)
_SMTP_LINE = re.compile(r"(?<![\d.])[45]\d\d(?:[ -]|$)|\b[45]\.\d{1,3}\.\d{1,3}\b")


@dataclass(frozen=True)
class BounceResult:
    """One recipient's outcome, as the suppression logic needs it.

    ``sent_to`` holds the addresses this bounce was delivered TO (To, Delivered-To,
    X-Original-To, Envelope-To and the SMTP RCPT TO given by the caller), so the caller
    can decode its VERP return path (``bounces+TOKEN@bounce.example.com``).
    """

    recipient: str | None
    kind: Kind
    reason: str
    status: str = ""
    diagnostic: str = ""
    remote_domain: str = ""
    feedback_type: str = ""
    action: str = ""
    remote_mta: str = ""
    original_message_id: str = ""
    sent_to: tuple[str, ...] = field(default_factory=tuple)

    @property
    def original_envelope(self) -> tuple[str, ...]:
        """Alias of ``sent_to``: the envelope/header recipients of the bounce itself."""
        return self.sent_to

    def verp_token(self, local_prefix: str = PREFIX) -> str | None:
        """The TOKEN of the first ``<local_prefix>+TOKEN@...`` address in ``sent_to``."""
        return verp_token(self.sent_to, local_prefix)


def analyse(raw: bytes, rcpt_to: list[str] | None = None) -> list[BounceResult]:
    """Parse ``raw`` (a whole RFC 5322 message) into per-recipient results.

    ``rcpt_to`` are the SMTP envelope recipients when the bounce arrived over SMTP; they
    are added to ``sent_to`` for VERP decoding. Never raises; returns [] when nothing in
    the message looks like a bounce, complaint or auto-reply.
    """
    try:
        return _analyse(raw, rcpt_to)
    except Exception:  # noqa: BLE001 - the contract is "never raises" on hostile input
        return []


def _analyse(raw: bytes, rcpt_to: list[str] | None) -> list[BounceResult]:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        return []
    msg = email.message_from_bytes(bytes(raw[:MAX_BYTES]), policy=email.policy.compat32)
    env = _Envelope.of(msg, rcpt_to)
    for parser in (_parse_arf, _parse_dsn, _parse_ses_json, _parse_autoreply, _parse_text):
        results = parser(msg, env)
        if results:
            return results
    return []


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Envelope:
    """What the bounce itself says about where it went and what it returns."""

    sent_to: tuple[str, ...]
    own: frozenset[str]
    sender: str
    subject: str
    original: Message | None
    original_id: str

    @classmethod
    def of(cls, msg: Message, rcpt_to: list[str] | None) -> _Envelope:
        sent: list[str] = []
        for name in ("To", "Delivered-To", "Envelope-To", "X-Envelope-To"):
            sent.extend(_addresses(_headers(msg, name)))
        sent.extend(a.strip().strip("<>").lower() for a in rcpt_to or [] if "@" in a)
        # X-Original-To is kept for VERP but not treated as ours when hunting for the
        # failed address: some MTAs stamp the failed recipient there.
        own = frozenset(sent)
        sent.extend(_addresses(_headers(msg, "X-Original-To")))
        sender = (_addresses([_header(msg, "From")]) or [""])[0]
        original = _original_message(msg)
        original_id = _header(original, "Message-ID").strip() if original is not None else ""
        return cls(
            sent_to=tuple(dict.fromkeys(sent)),
            own=own | {sender},
            sender=sender,
            subject=_header(msg, "Subject"),
            original=original,
            original_id=original_id,
        )


def _header(msg: Message | None, name: str) -> str:
    """A header as a str, decoding RFC 2047 words; "" when absent or undecodable."""
    if msg is None:
        return ""
    try:
        value = msg.get(name)
        if value is None:
            return ""
        return _decode_words(str(value))
    except Exception:  # noqa: BLE001 - a broken header must not lose the whole bounce
        return ""


def _headers(msg: Message, name: str) -> list[str]:
    try:
        return [_decode_words(str(v)) for v in msg.get_all(name) or []]
    except Exception:  # noqa: BLE001
        return []


def _decode_words(value: str) -> str:
    try:
        parts = email.header.decode_header(value)
    except Exception:  # noqa: BLE001
        return value
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            out.append(_decode_bytes(chunk, charset))
        else:
            out.append(chunk)
    return "".join(out)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


# A header value that is one plain address (``user@example.com`` or ``<user@example.com>``):
# what getaddresses() would return for it, without its character-by-character parser.
_PLAIN_ADDRESS = re.compile(
    r"\s*(?:(?P<bare>{a})|<(?P<angled>{a})>)\s*".format(
        a=r"[A-Za-z0-9_%+=-]+(?:\.[A-Za-z0-9_%+=-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
    )
)


def _addresses(values: Iterable[str]) -> list[str]:
    """Lower-case addr-specs from header values, dropping anything without an @.

    Most values are one plain address: those are read by a regular expression, the rest
    by getaddresses() (all of them together, as a malformed value can affect the next)."""
    values = [v for v in values if v]
    plain = [_PLAIN_ADDRESS.fullmatch(v) for v in values]
    if all(plain):
        return [(m["bare"] or m["angled"]).lower() for m in plain if m is not None]
    out = []
    for _name, addr in getaddresses(values):
        addr = addr.strip().strip("<>").lower()
        if "@" in addr and " " not in addr:
            out.append(addr)
    return out


def _clean_address(value: str) -> str | None:
    """``rfc822; <User@Example.COM>`` -> ``user@example.com``."""
    if ";" in value:
        value = value.split(";", 1)[1]
    match = _ADDR.search(value)
    return match.group(0).lower().strip(".") if match else None


def _part_text(part: Message) -> str:
    """Decoded text of a leaf part; a parsed header-block payload is rebuilt as text."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                blocks.append("\n".join(f"{k}: {v}" for k, v in block.items()))
                body = block.get_payload()
                if isinstance(body, str) and body.strip():
                    # A blank line before the fields makes them the block's body.
                    blocks.append(body)
        return "\n\n".join(blocks)
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return str(payload or "")
    return _decode_bytes(data, part.get_content_charset())


def _walk_outer(msg: Message) -> Iterator[Message]:
    """Leaf parts of the bounce, not descending into a returned original message."""
    if msg.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
        return
    payload = msg.get_payload()
    if isinstance(payload, list):
        if msg.get_content_maintype() == "multipart":
            for sub in payload:
                if isinstance(sub, Message):
                    yield from _walk_outer(sub)
            return
    yield msg


def _original_message(msg: Message) -> Message | None:
    """The returned original (message/rfc822 or text/rfc822-headers part), if any."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif ctype == "text/rfc822-headers":
            return email.message_from_string(_part_text(part), policy=email.policy.compat32)
    return None


def _bounce_text(msg: Message, *, cut: bool = True) -> str:
    """Human-readable text of the bounce, cut before any pasted copy of the original
    (unless ``cut`` is False)."""
    chunks = []
    for part in _walk_outer(msg):
        # A multipart whose boundary never matches is left as one text blob: read it.
        if part.get_content_maintype() in ("text", "multipart") or part.get_content_type() in (
            "message/delivery-status",
            "message/feedback-report",
        ):
            text = _part_text(part)
            if part.get_content_subtype() == "html":
                text = _strip_html(text)
            chunks.append(text)
    text = "\n".join(chunks)
    if not cut:
        return text
    marker = _ORIGINAL_MARKERS.search(text)
    if marker is None:
        pasted = _PASTED_HEADERS.search(text)
        if pasted is not None and text[: pasted.start()].strip():
            marker = pasted
    return text[: marker.start()] if marker else text


def _strip_html(text: str) -> str:
    text = re.sub(r"(?is)<(script|style).*?</\1>", " ", text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"&nbsp;|&#160;", " ", text).replace("&lt;", "<").replace("&gt;", ">")


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and lines and _FIELD.match(lines[-1]):
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def _dsn_records(text: str) -> list[dict[str, str]]:
    """Per-recipient DSN fields found anywhere in ``text`` (RFC 3464 section 2.3)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in _unfold(text):
        match = _FIELD.match(line.strip())
        if not match:
            continue
        key, value = match.group(1).lower(), match.group(2).strip()
        if key not in _DSN_FIELDS:
            continue
        starts_new = key in _RECIPIENT_FIELDS and any(k in current for k in (key, "action"))
        if starts_new or (key == "action" and "action" in current):
            records.append(current)
            current = {}
        current.setdefault(key, value)
    records.append(current)
    return [r for r in records if "action" in r or "status" in r or "final-recipient" in r]


def _diagnostic(value: str) -> str:
    """``smtp; 550 5.1.1 ...`` -> ``550 5.1.1 ...`` with whitespace collapsed."""
    if ";" in value[:12]:
        value = value.split(";", 1)[1]
    return " ".join(value.split())


def _result(
    env: _Envelope,
    recipient: str | None,
    kind: Kind,
    reason: str,
    **extra: str,
) -> BounceResult:
    return BounceResult(
        recipient=recipient,
        kind=kind,
        reason=reason,
        remote_domain=domain_of(recipient),
        original_message_id=env.original_id,
        sent_to=env.sent_to,
        **extra,
    )


# --------------------------------------------------------------------------- ARF


# Fields of an RFC 5965 report (and of the older drafts providers still send).
_ARF_FIELDS = frozenset(
    {
        "feedback-type",
        "user-agent",
        "version",
        "original-mail-from",
        "original-rcpt-to",
        "original-envelope-id",
        "arrival-date",
        "received-date",
        "source-ip",
        "reported-domain",
        "reported-uri",
        "removal-recipient",
        "reporting-mta",
        "incidents",
        "auth-failure",
        "authentication-results",
        "delivery-result",
    }
)
_FEEDBACK_REPORT = re.compile(r"report-type\s*=\s*[\"']?feedback-report", re.IGNORECASE)
# Feedback loops that do not use ARF (Microsoft's JMRP and its imitators): a short abuse
# report in text with the reported message attached.
_ABUSE_REPORT = re.compile(
    r"\b(?:e-?mail|spam|junk(?: mail)?) abuse report\b|\babuse report for an? (?:e-?mail|message)"
    r"|\bcomplaint about (?:a |the |this )?message from\b"
    r"|\breported (?:the attached|this|the) (?:message|mail|e-?mail) as (?:spam|junk)",
    re.IGNORECASE,
)
# Recipient headers a feedback loop puts on the returned message instead of the To it
# redacted (Microsoft: X-HmXmrOriginalRecipient).
_FBL_RECIPIENT_HEADERS = ("X-HmXmrOriginalRecipient", "X-Original-Recipient", "Original-Rcpt-To")
_COMPLAINT_TYPES = frozenset(
    {"abuse", "fraud", "virus", "complaint", "spam", "opt-out", "optout", "unsubscribe"}
)


def _arf_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in _unfold(text):
        match = _FIELD.match(line.strip())
        if match and match.group(1).lower() in _ARF_FIELDS:
            fields.setdefault(match.group(1).lower(), match.group(2).strip())
    return fields


def _feedback_type(fields: dict[str, str]) -> str:
    """The report's Feedback-Type, lower case; a report without one is about abuse
    (the field was optional in the drafts providers implemented) unless it carries
    authentication-failure fields."""
    found = re.search(r"[A-Za-z][A-Za-z-]*", fields.get("feedback-type", ""))
    if found:
        return found.group(0).lower()
    return "auth-failure" if "auth-failure" in fields else "abuse"


def _parse_arf(msg: Message, env: _Envelope) -> list[BounceResult]:
    """RFC 5965 feedback report: abuse is a reader complaint, auth-failure is policy.

    Accepted as providers send them: the report part as message/feedback-report or as
    text/plain inside a multipart/report with report-type=feedback-report (any case), the
    fields in any case, Feedback-Type missing (abuse), and non-ARF abuse reports that
    attach the reported message (JMRP style).
    """
    report = next(
        (p for p in msg.walk() if p.get_content_type() == "message/feedback-report"), None
    )
    fields = _arf_fields(_part_text(report)) if report is not None else {}
    is_report = report is not None or bool(_FEEDBACK_REPORT.search(_header(msg, "Content-Type")))
    if not fields:
        blocks = [
            _arf_fields(_part_text(part))
            for part in _walk_outer(msg)
            if part.get_content_maintype() in ("text", "multipart")  # a broken boundary: one blob
        ]
        # The block that names its Feedback-Type, else the one with the most fields. In a
        # feedback report any block of report fields is the report; elsewhere it must
        # carry Feedback-Type and more report fields to count as one.
        best = max(blocks, key=lambda b: ("feedback-type" in b, len(b)), default={})
        if (is_report and len(best) >= 2) or ("feedback-type" in best and len(best) >= 3):
            fields, is_report = best, True
    if not is_report and not _is_abuse_report(msg, env):
        return []
    feedback_type = _feedback_type(fields)
    recipient = _clean_address(fields.get("original-rcpt-to", "")) or _clean_address(
        fields.get("removal-recipient", "")
    )
    if recipient is None and env.original is not None:
        for name in (*_FBL_RECIPIENT_HEADERS, "To"):
            recipient = next(iter(_addresses([_header(env.original, name)])), None)
            if recipient is not None:
                break
    kind: Kind
    if feedback_type in _COMPLAINT_TYPES:
        kind = "complaint"  # the reader (or their provider for them) called it spam
    elif feedback_type in ("not-spam", "notspam"):
        kind = "ignore"
    else:
        # auth-failure, dkim, other: a report about our sending domain, not the reader.
        kind = "policy"
    return [_result(env, recipient, kind, "feedback", feedback_type=feedback_type)]


def _is_abuse_report(msg: Message, env: _Envelope) -> bool:
    """A feedback loop's own format: an abuse report with the reported message attached,
    not from a mailer-daemon and without a delivery report."""
    if env.original is None or _DAEMON.match(env.sender.partition("@")[0]):
        return False
    if any(p.get_content_type() == "message/delivery-status" for p in msg.walk()):
        return False
    return bool(_ABUSE_REPORT.search(f"{env.subject}\n{_bounce_text(msg)[:4000]}"))


# --------------------------------------------------------------------------- DSN


def _parse_dsn(msg: Message, env: _Envelope) -> list[BounceResult]:
    """RFC 3464 fields, from message/delivery-status or pasted into a text part."""
    parts = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
    sources = [_part_text(p) for p in parts] or [_bounce_text(msg)]
    records = [r for text in sources for r in _dsn_records(text)]
    records = [r for r in records if r.get("final-recipient") or r.get("original-recipient")]
    if not records:
        return []
    context = _bounce_text(msg)
    results = []
    for record in records:
        recipient = _clean_address(record.get("final-recipient", "")) or _clean_address(
            record.get("original-recipient", "")
        )
        results.append(_from_record(env, record, recipient, context))
    return results


def _from_record(
    env: _Envelope, record: dict[str, str], recipient: str | None, context: str
) -> BounceResult:
    action = record.get("action", "").lower().split()[0] if record.get("action") else ""
    diagnostic = _diagnostic(record.get("diagnostic-code", ""))
    status = find_status(record.get("status", ""))
    better = find_status(diagnostic)
    if better and (not status or status.endswith(".0.0")) and better[0] == (status or better)[0]:
        status = better
    remote_mta = _diagnostic(record.get("remote-mta", ""))
    extra = {"status": status, "diagnostic": diagnostic, "action": action, "remote_mta": remote_mta}
    if action in ("delivered", "relayed", "expanded"):
        return _result(env, recipient, "ignore", "delivered", **extra)
    if not diagnostic:  # some MTAs leave it out of the DSN and say it in the text part
        diagnostic = _recipient_lines(context, recipient)[:1000]
        extra["diagnostic"] = diagnostic
    kind, reason = classify(status, diagnostic, context)
    if action == "delayed" and kind != "policy":
        # Still being retried, so never final; a policy refusal stays policy (fix our side).
        kind, reason = "soft", "delayed"
    elif action == "failed" and _says_user_unknown(reason, diagnostic):
        # Final, and the receiver's own words say the user does not exist: hard, whatever
        # the status digit (MTAs give up on a 450 "User unknown" and report the 4.x.x
        # they were last given). A host lookup failure under 4.x.x stays soft: DNS
        # errors are often passing.
        kind = "hard"
    elif kind == "hard" and status.startswith("4") and reason != "notaccept":
        kind = "soft"
    return _result(env, recipient, kind, reason, **extra)


_TRANSIENT = re.compile(
    r"temporar|try (?:again|later)|\blater\b|gr[ae]y-?list|\bbusy\b|rate[- ]?limit|throttl",
    re.IGNORECASE,
)


def _says_user_unknown(reason: str, diagnostic: str) -> bool:
    """The diagnostic text itself (not only a status code) says the user is unknown, and
    nothing in it says "temporary"."""
    return (
        reason == "userunknown"
        and reason_from_text(diagnostic) == reason
        and not _TRANSIENT.search(diagnostic)
    )


def _recipient_lines(text: str, recipient: str | None) -> str:
    """The paragraphs of a free-text bounce that name the recipient or carry a reply code.

    MTAs put the failed address, the remote host and the reply in one paragraph
    ("<a@b>: host x said: 550 ... (in reply to RCPT TO command)"), so whole paragraphs
    keep multi-line replies together while leaving out the boilerplate around them.
    """
    picked = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        lowered = paragraph.lower()
        if _SMTP_LINE.search(paragraph) or (recipient and recipient in lowered):
            picked.append(" ".join(paragraph.split()))
    return " ".join(picked)


# --------------------------------------------------------------------------- SES JSON


_SES_COMPLAINT = re.compile(r'"(?:notificationType|eventType)"\s*:\s*"Complaint"')
_SES_ADDRESS = re.compile(r'"emailAddress"\s*:\s*"([^"]+)"')


def _parse_ses_json(msg: Message, env: _Envelope) -> list[BounceResult]:
    """Amazon SES notifications e-mailed as JSON (notificationType Bounce/Complaint/...).

    SNS mails the notification itself or its own envelope around it (the notification
    then a JSON string in ``Message``), as the whole body or as the text part of a
    multipart mail; relays fold the one long line (Sendmail: ``!`` at the cut, the rest
    on a line starting with a space). A complaint whose JSON stays unreadable is still
    recognised by its notificationType and its ``emailAddress`` fields.
    """
    for part in _walk_outer(msg):
        if part.get_content_maintype() not in ("text", "multipart"):
            continue
        text = _part_text(part)
        if "notificationType" not in text and "eventType" not in text:
            continue
        data = _ses_notification(text)
        if data is not None:
            return _ses_results(data, env)
        if _SES_COMPLAINT.search(_unfold_long_lines(text)):
            rcpts = _SES_ADDRESS.findall(_unfold_long_lines(text))
            return _ses_complaint(env, [{"emailAddress": r} for r in rcpts], None)
    return []


def _unfold_long_lines(text: str) -> str:
    return re.sub(r"!\r?\n ", "", text)


def _ses_notification(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0:
        return None
    body = text[start:]
    unfolded = _unfold_long_lines(body)
    for candidate in (body, unfolded, re.sub(r"\r?\n", "", unfolded)):
        try:
            data, _ = json.JSONDecoder().raw_decode(candidate)
        except ValueError:
            continue
        if not isinstance(data, dict):
            return None
        if isinstance(data.get("Message"), str):  # wrapped in an SNS envelope
            try:
                data = json.loads(data["Message"])
            except ValueError:
                return None
        if isinstance(data, dict) and (data.get("notificationType") or data.get("eventType")):
            return data
        return None
    return None


def _ses_complaint(
    env: _Envelope, rcpts: list[Any], complaint: dict[str, Any] | None
) -> list[BounceResult]:
    feedback_type = str((complaint or {}).get("complaintFeedbackType") or "abuse").lower()
    addresses = [
        _clean_address(str(r.get("emailAddress", ""))) for r in rcpts if isinstance(r, dict)
    ]
    return [
        _result(env, address, "complaint", "feedback", feedback_type=feedback_type)
        for address in addresses or [None]
    ]


def _ses_results(data: dict[str, Any], env: _Envelope) -> list[BounceResult]:
    kind_name = str(data.get("notificationType") or data.get("eventType") or "")
    if kind_name == "Delivery":
        rcpts = data.get("delivery", {}).get("recipients", [])
        return [
            _result(env, _clean_address(r), "ignore", "delivered", action="delivered")
            for r in rcpts
        ]
    if kind_name == "Complaint":
        complaint = data.get("complaint") or {}
        rcpts = complaint.get("complainedRecipients") or [
            {"emailAddress": a} for a in (data.get("mail") or {}).get("destination") or []
        ]
        return _ses_complaint(env, rcpts, complaint)
    if kind_name == "Bounce":
        out = []
        for r in data.get("bounce", {}).get("bouncedRecipients", []):
            diagnostic = _diagnostic(str(r.get("diagnosticCode", "")))
            status = find_status(str(r.get("status", ""))) or find_status(diagnostic)
            kind, reason = classify(status, diagnostic)
            out.append(
                _result(
                    env,
                    _clean_address(r.get("emailAddress", "")),
                    kind,
                    reason,
                    status=status,
                    diagnostic=diagnostic,
                    action="failed",
                )
            )
        return out
    return []


# --------------------------------------------------------------------------- auto-replies


def _parse_autoreply(msg: Message, env: _Envelope) -> list[BounceResult]:
    """RFC 3834 auto-replies and vacation messages: the sender is our reader."""
    if _looks_like_bounce(msg, env):
        return []
    auto = _header(msg, "Auto-Submitted").lower()
    flagged = (
        auto.startswith("auto-replied")
        or any(_header(msg, h) for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"))
        or "auto_reply" in _header(msg, "Precedence").lower()
        or _AUTOREPLY_SUBJECT.search(env.subject) is not None
    )
    if not flagged:
        return []
    return [_result(env, env.sender or None, "ignore", "vacation")]


def _looks_like_bounce(msg: Message, env: _Envelope) -> bool:
    local = env.sender.partition("@")[0]
    return bool(
        _DAEMON.match(local)
        or _BOUNCE_SUBJECT.search(env.subject)
        or _header(msg, "X-Failed-Recipients")
        or msg.get_content_type() == "multipart/report"
        or not env.sender
    )


# --------------------------------------------------------------------------- free text


def _parse_text(msg: Message, env: _Envelope) -> list[BounceResult]:
    """Non-standard bounces: find the failed address and the reply text ourselves."""
    if not _looks_like_bounce(msg, env) and env.original is None:
        return []
    text = _bounce_text(msg)
    # The failed address may be named only in the pasted copy of the original.
    recipients = _failed_recipients(msg, env, text) or _failed_recipients(
        msg, env, _bounce_text(msg, cut=False)
    )
    if not recipients and not text.strip():
        return []
    out = []
    candidates: list[str | None] = [*recipients] or [None]
    for recipient in candidates:
        diagnostic = _recipient_lines(text, recipient)
        if recipient is None and not diagnostic:
            continue  # nothing to act on: neither an address nor a reply to classify
        status = find_status(diagnostic)
        kind, reason = classify(status, diagnostic, text)
        if _is_delay(env.subject, text):
            if kind == "hard":
                kind, reason = "soft", "delayed"
        elif _says_user_unknown(reason, diagnostic):
            kind = "hard"  # a final report, as with Action: failed in a DSN
        out.append(
            _result(
                env,
                recipient,
                kind,
                reason,
                status=status,
                diagnostic=diagnostic[:1000],
                action="failed",
            )
        )
    return out


def _is_delay(subject: str, text: str) -> bool:
    return bool(re.search(r"\(delay\)|delayed|warning: message", subject, re.IGNORECASE)) or bool(
        re.search(r"will (?:continue to )?(?:retry|try)", text, re.IGNORECASE)
    )


def _failed_recipients(msg: Message, env: _Envelope, text: str) -> list[str]:
    """Best guess at the failed addresses, most trustworthy source first."""
    failed = _addresses(_headers(msg, "X-Failed-Recipients"))
    if failed:
        return list(dict.fromkeys(failed))
    failed = _flufl_scan(msg)
    if failed:
        return failed
    candidates = [m.group(0).lower().strip(".") for m in _LEADING_ADDR.finditer(text)]
    candidates += [m.group(0).lower().strip(".") for m in _ADDR.finditer(text)]
    for address in candidates:
        if address not in env.own and not _DAEMON.match(address):
            return [address]
    if env.original is not None:
        return _addresses([_header(env.original, "To")])[:1]
    return []


class _DetectorCrash(logging.Filter):
    """Drops flufl.bounce's "Exception in detector" record and its traceback.

    flufl.bounce logs every detector crash with a full traceback and then re-raises; on
    hostile or non-mail input (a PNG given to ``bounces ingest``) that traceback reached
    the operator's terminal through logging's last-resort handler. The exception itself
    comes back to :func:`_flufl_scan`, which treats it as "no answer" and logs one line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and str(record.msg).startswith("Exception in detector"))


logging.getLogger("flufl.bounce").addFilter(_DetectorCrash())


def _flufl_scan(msg: Message) -> list[str]:
    """flufl.bounce's MTA-specific detectors, as a fallback address finder."""
    try:
        from flufl.bounce import all_failures

        temporary, permanent = all_failures(msg)
    except Exception as exc:  # noqa: BLE001 - a detector crash means "no answer"
        log.debug("flufl.bounce gave no answer: %s: %s", exc.__class__.__name__, exc)
        return []
    found = []
    for raw in (*permanent, *temporary):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        address = _clean_address(text)
        if address:
            found.append(address)
    return sorted(dict.fromkeys(found))
