"""Turn a DSN status code and the receiver's reply text into a kind and a reason.

The reason names follow Sisimai's vocabulary (userunknown, mailboxfull, blocked, ...), so a
reader of the logs can look them up. The kind is what the newsletter does about it:

- ``hard``: the address is permanently bad; stop sending to it.
- ``soft``: a temporary failure; retry, suppress only if it keeps happening.
- ``policy``: the receiver refused this sender or this message, not the address. Fix the
  sending side. These must never be classed ``hard``: dropping a good reader because our
  IP was listed somewhere is worse than missing one dead address.
- ``complaint``: the reader marked the mail as spam (ARF abuse report).
- ``ignore``: auto-replies and delivery confirmations.

Everything here is a pure function of strings, so it is cheap to test and to reuse.
"""

from __future__ import annotations

import re
from typing import Final, Literal

import re2  # google-re2: one DFA pass finds which reason patterns can match

Kind = Literal["hard", "soft", "policy", "complaint", "ignore"]

HARD_REASONS: Final = frozenset({"userunknown", "hostunknown", "notaccept", "suspend", "hasmoved"})
SOFT_REASONS: Final = frozenset(
    {
        "mailboxfull",
        "exceedlimit",
        "expired",
        "delayed",
        "toomanyconn",
        "systemerror",
        "systemfull",
        "networkerror",
        "undefined",
    }
)
POLICY_REASONS: Final = frozenset(
    {
        "blocked",
        "rejected",
        "spamdetected",
        "policyviolation",
        "securityerror",
        "filtered",
        "authfailure",
        "badreputation",
        "requireptr",
        "norelaying",
        "virusdetected",
        "mesgtoobig",
        "contenterror",
        "syntaxerror",
    }
)
IGNORE_REASONS: Final = frozenset({"vacation", "autoreply", "delivered"})


def _rx(*patterns: str) -> re.Pattern[str]:
    """Compile alternatives case-insensitively; whitespace in a pattern matches any run."""
    joined = "|".join(p.replace(" ?", r"\s*").replace(" ", r"\s+") for p in patterns)
    return re.compile(joined, re.IGNORECASE)


# Ordered: the first reason whose pattern matches the diagnostic wins. Refusals of the
# sender or the content come before "user unknown" patterns, because receivers often say
# "recipient rejected" or "mailbox unavailable" when they really mean "your IP is listed".
REASON_PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    # A few precise phrases that would otherwise be caught by broader patterns below.
    (
        "suspend",
        _rx(
            r"(?:recipient|user)(?:'s)? (?:e-?mail )?account (?:is |has been )?"
            r"(?:blocked|disabled|suspended|locked|deactivated)",
        ),
    ),
    ("badreputation", _rx(r"reputation")),
    (
        "securityerror",
        _rx(
            r"smtp auth(?:entication)?",
            r"without (?:smtp )?authentication",
            r"(?:does not|doesn't) advertise auth",
        ),
    ),
    (
        "toomanyconn",
        _rx(
            r"(?:connection|sending|message) frequency",
            r"frequency limit",
            r"too many (?:connections|concurrent|simultaneous|sessions|smtp sessions)",
            r"rate[- ]limit",
            r"throttl",
        ),
    ),
    (
        "rejected",
        _rx(
            r"permission to post",
            r"投稿する権限",
        ),
    ),
    (
        "norelaying",
        _rx(
            r"relay access denied",
            r"relaying (?:denied|not (?:allowed|permitted))",
            r"(?:not permitted|unable|not allowed) to relay",
            r"we do not relay",
            r"relay not permitted",
            r"no relaying",
            r"relay(?:ing)? prohibited",
            r"insecure mail relay",
        ),
    ),
    (
        "requireptr",
        _rx(
            r"no ptr record",
            r"ptr record",
            r"reverse dns",
            r"reverse (?:hostname|lookup)",
            r"rdns",
            r"cannot find your hostname",
            r"cannot find your reverse hostname",
            r"client host rejected: cannot find",
            r"(?:ip|address) (?:has|have) no (?:ptr|dns)",
            r"does not have a (?:ptr|reverse)",
            r"no dns entry for your ip",
            r"hostname (?:does not|doesn't) resolve",
            r"unresolvable (?:ip|address)",
        ),
    ),
    (
        "virusdetected",
        _rx(
            r"virus",
            r"malware",
            r"infected",
            r"\bmalicious\b",
        ),
    ),
    (
        "syntaxerror",
        _rx(
            r"syntax error",
            r"malformed (?:recipient )?address",
            r"command (?:unrecognized|not recognized)",
            r"unrecognized command",
            r"bad sequence of commands",
            r"line too long",
            r"invalid command",
            r"parameter not implemented",
        ),
    ),
    (
        "mesgtoobig",
        _rx(
            r"message (?:is )?too (?:big|large)",
            r"message size exceeds",
            r"message (?:size|length) (?:exceeds|is over|greater than)",
            r"size (?:limit|exceeds)",
            r"exceeds (?:the )?(?:maximum )?(?:message )?size",
            r"mail size",
            r"too large",
            r"line (?:length )?limit exceeded",
            r"message file too big",
            r"exceeded (?:the )?max(?:imum)? (?:message )?size",
            r"size of (?:the )?message",
        ),
    ),
    (
        "authfailure",
        _rx(
            r"\bspf\b",
            r"sender policy framework",
            r"\bdkim\b",
            r"\bdmarc\b",
            r"domainkeys",
            r"sender (?:id|authentication) (?:check )?fail",
            r"authentication (?:check )?(?:failure|failed) for (?:the )?sender",
            r"unauthenticated (?:email|mail|sender)",
            r"not authenticated with",
        ),
    ),
    (
        "badreputation",
        _rx(
            r"reputation",
            r"bad sender score",
            r"sender score",
            r"suspicious due to the nature",
        ),
    ),
    (
        "blocked",
        _rx(
            r"spamhaus",
            r"spamcop",
            r"barracuda(?:central)?\.",
            r"sorbs",
            r"black ?list",
            r"block ?list",
            r"deny ?list",
            r"\brbl\b",
            r"dnsbl",
            r"(?:is|are|been|was) listed",
            r"(?<!not\x20)listed (?:in|on|at|by)",
            r"my name was rejected",
            r"(?:host|network|ip|client) (?:\S+ )?not allowed",
            r"blocked using",
            r"client host (?:\[[^\]]*\] )?(?:blocked|rejected)",
            r"(?:ip|address|host|connection|server)(?: address)? (?:\S+ )?"
            r"(?:is |has been )?blocked",
            r"your (?:ip|server|network|host)",
            r"access denied",
            r"connection (?:refused|rejected) (?:by|from|due)",
            r"refused to talk",
            r"not allowed to (?:send|connect)",
            r"temporarily (?:deferred|rejected) due to",
            r"service (?:is )?unavailable;? client host",
            r"\bblocked\b",
            r"banned",
            r"too many invalid recipients",
        ),
    ),
    (
        "spamdetected",
        _rx(
            r"spam",
            r"\bube\b",
            r"unsolicited",
            r"bulk (?:e-?mail|mail)",
            r"junk mail",
            r"content (?:was )?rejected",
            r"message content rejected",
            r"considered (?:as )?junk",
            r"classified as (?:bulk|junk)",
            r"scored too high",
            r"score (?:of )?\d+(?:\.\d+)? (?:exceeds|>)",
        ),
    ),
    (
        "securityerror",
        _rx(
            r"authentication (?:is )?required",
            r"auth(?:entication)? (?:required|failed|failure)",
            r"must (?:use|issue a) starttls",
            r"starttls",
            r"\btls (?:is )?required",
            r"encryption required",
            r"must be encrypted",
            r"certificate",
            r"insecure",
            r"security (?:policy|error)",
            r"not authorized to send",
            r"sender (?:is )?not authorized",
        ),
    ),
    (
        "policyviolation",
        _rx(
            r"policy violation",
            r"violat(?:es|ed|ion of) (?:\S+ ){0,3}polic",
            r"(?:content|local|email|mail|acceptable use|security|anti-?spam) policy",
            r"prohibited (?:by|content|attachment|file)",
            r"not allowed by (?:policy|the administrator)",
            r"rejected by (?:\S+ ){0,2}polic",
            r"due to (?:local )?policy",
            r"administrative prohibition",
            r"attachment (?:type )?(?:is )?not allowed",
            r"banned (?:attachment|file)",
        ),
    ),
    (
        "contenterror",
        _rx(
            r"media error",
            r"content error",
            r"illegal (?:content|character|header)",
            r"invalid (?:header|mime|content)",
            r"malformed (?:header|message|mime)",
            r"header (?:error|syntax)",
            r"(?:8-?bit|non-ascii|binary) (?:data|characters?|content)",
            r"improper (?:use of|header)",
            r"message (?:headers? )?(?:is|are) (?:malformed|invalid|corrupt)",
            r"too many (?:headers|received)",
        ),
    ),
    (
        "hasmoved",
        _rx(
            r"has moved",
            r"address (?:has )?changed",
            r"no longer (?:valid|available)(?:; | at | please )",
            r"moved to",
        ),
    ),
    (
        "suspend",
        _rx(
            r"(?:account|mailbox|user|address|recipient) (?:\S+ ){0,2}(?:is |has been )?"
            r"(?:disabled|suspended|deactivated|inactive|locked|frozen|expired|closed)",
            r"(?:disabled|suspended|inactive|deactivated|closed|locked) (?:account|mailbox|user)",
            r"suspended",
            r"no longer (?:active|in use)",
            r"not (?:an? )?active",
            r"inactive",
        ),
    ),
    (
        "rejected",
        _rx(
            r"sender (?:address )?(?:rejected|refused|denied|blocked)",
            r"sender (?:\S+ )?(?:is )?not (?:allowed|permitted|accepted)",
            r"(?:mail from|envelope sender|envelope from|return[- ]path) .{0,40}"
            r"(?:rejected|refused|invalid|denied|not allowed)",
            r"sender domain (?:\S+ )?(?:does not exist|not found|is invalid|unknown)",
            r"domain of sender address \S+ does not exist",
            r"sender verify failed",
            r"sender (?:address )?verification",
            r"unverified sender",
            r"not (?:a )?member",
            r"invalid (?:sender|from)",
            r"(?:mail|message) (?:was |is |has been )?(?:rejected|refused|rejete)",
            r"rejected by (?:the )?recipient",
            r"refused by (?:the )?recipient",
            r"your (?:e-?mail|message|mail) (?:was |has been )?(?:rejected|refused)",
            r"delivery not authorized",
            r"access (?:to \S+ )?(?:refused|not allowed)",
        ),
    ),
    (
        "filtered",
        _rx(
            r"filtered",
            r"rejected by (?:the )?(?:user|recipient)'?s?",
            r"recipient (?:has )?(?:rejected|refused|declined)",
            r"recipient(?:'s)? preferences",
            r"does not (?:want|wish) to receive",
            r"only accept(?:s|ing)? (?:mail|e-?mail|messages) from",
            r"not accept(?:ing)? (?:mail|messages) from",
            r"user (?:has )?(?:rejected|refused)",
        ),
    ),
    (
        "notaccept",
        _rx(
            r"(?:does not|doesn't|do not|don't|will not|cannot) accept (?:any )?(?:e-?)?mail",
            r"not accepting (?:any )?(?:e-?)?mail",
            r"null mx",
            r"no mx (?:record|host)",
            r"mx (?:record )?(?:points|pointing) to",
            r"accepts? no mail",
            r"indicated no smtp service",
            r"(?:doesn't|does not) receive (?:e-?)?mail",
        ),
    ),
    (
        "hostunknown",
        _rx(
            r"host (?:or domain name )?(?:not found|unknown)",
            r"unknown host",
            r"domain (?:name )?(?:not found|does not exist|unknown|is not found)",
            r"no such (?:host|domain)",
            r"(?:unrouteable|unroutable) (?:mail )?domain",
            # Exim: its router found no way to the domain (no such domain, no usable MX).
            r"(?:unrouteable|unroutable) address",
            r"all (?:relevant )?mx records point to non-?existent hosts",
            r"all host address lookups failed permanently",
            # Sendmail: "Host unknown (Name server: mx.example: host not found)" is caught
            # above; its other permanent wording:
            r"illegal host/domain name",
            r"mail domain mentioned in (?:the )?e-?mail address is unknown",
            r"name or service not known",
            r"nxdomain",
            r"(?:couldn't|could not|can't|cannot|unable to) (?:find|resolve|locate) (?:any )?"
            r"(?:host|domain|mail exchanger|mx)",
            r"hostname (?:not found|unknown|lookup failed)",
            r"unknown (?:mail )?domain",
            r"invalid domain",
            r"domain (?:\S+ )?(?:is )?not (?:\S+ )?(?:hosted|configured|serviced|handled)",
            r"recipient domain",
            r"domain (?:is )?(?:not reachable|unreachable)",
            r"dns (?:error|lookup failed).{0,40}domain",
        ),
    ),
    (
        "mailboxfull",
        _rx(
            r"mailbox (?:is )?full",
            r"mail ?box (?:\S+ )?(?:is )?(?:full|over)",
            r"quota",
            r"over ?quota",
            r"exceeded (?:\S+ ){0,3}storage",
            r"storage (?:allocation|limit|quota|space)",
            r"(?:mailbox|inbox|account|folder) (?:\S+ ){0,3}(?:exceeded|exceeds|limit)",
            r"user(?:'s)? (?:mail ?box|disk) (?:\S+ )?(?:full|quota)",
            r"disk (?:space|full)",
            r"not enough (?:disk )?space",
            r"(?:is|are) full",
            r"too many messages in (?:the )?(?:mailbox|folder)",
            r"insufficient (?:disk )?space",
        ),
    ),
    (
        "exceedlimit",
        _rx(
            r"exceeds? (?:the )?(?:\S+ )?limit",
            r"limit exceeded",
            r"exceeded (?:the )?(?:\S+ )?limit",
            r"message length exceeds",
        ),
    ),
    (
        "userunknown",
        _rx(
            r"user (?:unknown|not found|does not exist|doesn't exist|invalid)",
            r"unknown (?:user|recipient|local[- ]part|mailbox|address|account)",
            r"no such (?:user|mailbox|recipient|account|address|person|local user)",
            r"(?:mailbox|recipient|address|account|user|addressee) (?:\S+ ){0,3}"
            r"(?:does not|doesn't|did not|not) exist",
            r"does not exist",
            r"not exist",
            r"(?:recipient|addressee|user|mailbox|address) (?:is )?unknown",
            r"invalid (?:recipient|mailbox|address|user|account)",
            r"(?:recipient|mailbox|user|address|account) (?:\S+ )?(?:not found|not valid|invalid)",
            r"(?:mailbox|user) unavailable",
            r"mailbox not (?:found|available)",
            r"not (?:a )?valid (?:user|mailbox|recipient|address)",
            r"bad (?:recipient|destination mailbox|address)",
            r"not listed in",
            r"recipient (?:address )?rejected",
            r"recipient not (?:recognized|found|accepted)",
            r"no mailbox",
            r"mailbox name not allowed",
            r"address (?:is )?(?:not recognized|rejected|unknown)",
            r"no (?:valid )?recipients?",
            r"this user (?:doesn't|does not) have",
            r"(?:user|recipient) (?:\S+ )?(?:is )?not (?:here|local|known)",
            r"undeliverable address",
            r"couldn't find (?:the )?recipient",
            r"(?:account|mailbox) (?:\S+ )?(?:is )?(?:unavailable|not available)",
            r"destination address rejected",
            r"no account",
        ),
    ),
    (
        "toomanyconn",
        _rx(
            r"too many (?:connections|concurrent|simultaneous|sessions|smtp sessions)",
            r"rate limit",
            r"rate[- ]limited",
            r"throttl",
            r"too many (?:messages|mails|recipients|requests)",
            r"(?:receiving|sending) (?:mail )?(?:at )?a rate",
            r"connection limit",
            r"exceeded (?:the )?(?:\S+ )?rate",
            r"too fast",
            r"try again later",
        ),
    ),
    (
        "expired",
        _rx(
            r"retry (?:time(?:out)?|period) (?:not reached|exceeded|expired)",
            r"delivery time expired",
            r"(?:message|mail) (?:has )?expired",
            r"expired",
            r"giving up",
            r"(?:has not|could not|couldn't|hasn't) (?:yet )?been delivered",
            r"(?:not|n't) been able to deliver",
            r"undeliverable for \d+",
            r"timed? ?out (?:waiting|after)",
            r"delivery (?:has been )?delayed",
            r"deferred",
            r"will (?:continue to )?(?:retry|try)",
            r"delivery attempts will continue",
            r"temporarily (?:unable|deferred)",
        ),
    ),
    (
        "networkerror",
        _rx(
            r"connection (?:timed out|refused|reset|lost|closed)",
            r"timed out",
            r"network (?:is )?unreachable",
            r"no route to host",
            r"(?:could not|couldn't|unable to) connect",
            r"lost connection",
            r"mail (?:forwarding )?loop",
            r"too many hops",
            r"hop count exceeded",
            r"routing loop",
            r"dns (?:error|failure|lookup)",
            r"temporary lookup failure",
            r"unable to (?:resolve|look ?up)",
        ),
    ),
    (
        "systemfull",
        _rx(
            r"insufficient system (?:storage|resources)",
            r"system (?:is )?full",
            r"out of (?:disk|memory|storage)",
        ),
    ),
    (
        "systemerror",
        _rx(
            r"system (?:error|failure|problem)",
            r"internal (?:server )?error",
            r"server error",
            r"local error",
            r"temporary (?:failure|error|problem)",
            r"service (?:not available|unavailable|temporarily unavailable)",
            r"resources temporarily unavailable",
            r"i/o error",
            r"loop",
            r"unexpected error",
        ),
    ),
)

_USER_UNKNOWN = dict(REASON_PATTERNS)["userunknown"]
_URL = re.compile(r"(?:https?|ftp)://([^/\s?#]+)\S*", re.IGNORECASE)
_NAMED_ACCOUNT = re.compile(r"(?:doesn't|does not) have an? \S+ account", re.IGNORECASE)
_AFTER_DATA = re.compile(
    r"after (?:end of )?data|>>> data\b|in reply to (?:the )?(?:end of )?data"
    r"|smtp command:?\s+data\b|data command",
    re.IGNORECASE,
)
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_REPLY = re.compile(r"(?<![\d.])([245])\d\d(?=[\s-])")


def kind_of(reason: str, status: str = "") -> Kind:
    """Map a reason to what the newsletter should do with the address.

    A 4.x.x status downgrades a would-be hard bounce to soft: the receiver told us to come
    back later, so it cannot be sure the address is dead.
    """
    if reason == "feedback":
        return "complaint"
    if reason in IGNORE_REASONS:
        return "ignore"
    if reason in POLICY_REASONS:
        return "policy"
    if reason in HARD_REASONS:
        # A Null MX (RFC 7505) is final even when relayed to us with a 4.x.x code.
        return "soft" if status.startswith("4") and reason != "notaccept" else "hard"
    return "soft"


def _case_sensitive(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """The same pattern without IGNORECASE, for lower-cased ASCII text.

    Why: ``re`` matches case-insensitively character by character and cannot use its fast
    literal scans, so the ~30 patterns below cost three times as much as on text lowered
    once. Equal results: every letter the patterns name is lower case (checked here), and
    on ASCII text IGNORECASE means exactly "as if both were lower case"; text with other
    characters (where Unicode case folding differs) keeps the original patterns.
    """
    if re.search(r"[A-Z]", re.sub(r"\\.", "", pattern.pattern)):
        raise ValueError(f"upper-case letter in a reason pattern: {pattern.pattern!r}")
    return re.compile(pattern.pattern, pattern.flags & ~re.IGNORECASE)


_LOWER_PATTERNS: Final = tuple((r, _case_sensitive(p)) for r, p in REASON_PATTERNS)


def reason_from_text(text: str) -> str:
    """Return the first reason whose pattern matches ``text``, or "" when nothing does.

    URLs are removed first: help links ("https://example.com/blocked-user") would
    otherwise decide the reason more often than the words the receiver wrote.
    """
    if not text:
        return ""
    cleaned = _URL.sub(r" \1 ", text)
    if not cleaned.isascii():
        return _first_reason(cleaned, REASON_PATTERNS)
    cleaned = cleaned.lower()
    # Python's re tries the ~30 patterns one after another, each at every position
    # (0.6 ms for a DSN's 500 characters, 8% of the bounce server's time); RE2 runs
    # them all in one pass. Its patterns match wherever ours do (see _for_re2), so it
    # names the candidates and ours confirm them in order: the answer is ours exactly.
    spaced = cleaned.translate(_SPACES_RE2_LACKS)
    hits = _CANDIDATES.Match(spaced)
    if hits is None:
        # No candidate, or RE2's set ran out of memory (it then answers None too): the
        # single combined search, which falls back to RE2's slower engines, decides.
        if _ANY_CANDIDATE.search(spaced) is None:
            return ""
        return _first_reason(cleaned, _LOWER_PATTERNS)
    for i in sorted(hits):
        reason, pattern = _LOWER_PATTERNS[int(i)]
        if pattern.search(cleaned):
            return reason
    return ""


def _first_reason(text: str, patterns: tuple[tuple[str, re.Pattern[str]], ...]) -> str:
    """The reference: each pattern in turn with Python's re (tests hold the fast path to
    it, and text that is not ASCII takes it, since case folding there is Unicode's)."""
    for reason, pattern in patterns:
        if pattern.search(text):
            return reason
    return ""


def _for_re2(pattern: str) -> str:
    r"""A reason pattern as RE2 takes it, matching at least wherever the original does.

    RE2 has no look-behind, so each ``(?<!…)``/``(?<=…)`` is dropped (the pattern only
    matches more). Everything else the patterns use (classes, ``\s``, ``\b``, bounded
    repeats) means the same on lower-case ASCII text, except that Python's ``\s`` also
    matches \v and \x1c-\x1f: those are turned into spaces first (_SPACES_RE2_LACKS).
    """
    return re.sub(r"\(\?<[!=][^()]*\)", "", pattern)


_SPACES_RE2_LACKS: Final = str.maketrans("\v\x1c\x1d\x1e\x1f", "     ")


def _candidate_set() -> re2.Set:
    found = re2.Set.SearchSet(re2.Options())
    for _, pattern in _LOWER_PATTERNS:
        found.Add(_for_re2(pattern.pattern))
    found.Compile()
    return found


_CANDIDATES: Final = _candidate_set()
_ANY_CANDIDATE: Final = re2.compile(
    "|".join(f"(?:{_for_re2(p.pattern)})" for _, p in _LOWER_PATTERNS)
)


# RFC 3463 subject/detail codes to reasons, used when the text says nothing useful.
_STATUS_REASONS: Final[dict[str, str]] = {
    "1.1": "userunknown",
    "1.2": "hostunknown",
    "1.3": "userunknown",
    "1.4": "userunknown",
    "1.5": "userunknown",
    "1.6": "hasmoved",
    "1.7": "rejected",
    "1.8": "rejected",
    "1.10": "notaccept",
    "2.0": "userunknown",
    "2.1": "suspend",
    "2.2": "mailboxfull",
    "2.3": "exceedlimit",
    "2.4": "systemerror",
    "3.0": "systemerror",
    "3.1": "systemfull",
    "3.2": "systemerror",
    "3.3": "systemerror",
    "3.4": "mesgtoobig",
    "3.5": "systemerror",
    "4.0": "networkerror",
    "4.1": "networkerror",
    "4.2": "networkerror",
    "4.3": "systemerror",
    "4.4": "hostunknown",
    "4.5": "networkerror",
    "4.6": "networkerror",
    "4.7": "expired",
    "5.0": "syntaxerror",
    "5.1": "syntaxerror",
    "5.2": "syntaxerror",
    "5.3": "toomanyconn",
    "5.4": "syntaxerror",
    "5.5": "syntaxerror",
    "6.0": "contenterror",
    "6.1": "contenterror",
    "6.2": "contenterror",
    "6.3": "contenterror",
    "6.4": "contenterror",
    "6.5": "contenterror",
    "7.0": "blocked",
    "7.1": "rejected",
    "7.2": "rejected",
    "7.3": "securityerror",
    "7.4": "securityerror",
    "7.5": "securityerror",
    "7.6": "securityerror",
    "7.7": "securityerror",
    "7.8": "securityerror",
    "7.9": "securityerror",
    "7.10": "securityerror",
    "7.11": "securityerror",
    "7.12": "securityerror",
    "7.13": "suspend",
    "7.14": "securityerror",
    "7.15": "securityerror",
    "7.16": "securityerror",
    "7.17": "suspend",
    "7.18": "suspend",
    "7.19": "suspend",
    "7.20": "authfailure",
    "7.21": "authfailure",
    "7.22": "authfailure",
    "7.23": "authfailure",
    "7.24": "authfailure",
    "7.25": "requireptr",
    "7.26": "authfailure",
    "7.27": "notaccept",
    "7.28": "spamdetected",
    "7.29": "authfailure",
}


def reason_from_status(status: str) -> str:
    """Reason implied by an RFC 3463 enhanced status code alone, or "" for x.0.0."""
    parts = status.split(".")
    if len(parts) != 3:
        return ""
    return _STATUS_REASONS.get(f"{parts[1]}.{parts[2]}", "")


def find_status(text: str) -> str:
    """First plausible enhanced status code (``5.1.1``) in free text, skipping IPs."""
    for match in _STATUS.finditer(text or ""):
        return ".".join(match.groups())
    return ""


def find_reply_class(text: str) -> str:
    """First digit of the first SMTP reply code (550, 452) in ``text``, or ""."""
    match = _REPLY.search(text or "")
    return match.group(1) if match else ""


def _is_generic(status: str) -> bool:
    """x.0.0 tells only permanent or temporary; the text should decide the reason."""
    return status.endswith(".0.0") or status == ""


def classify(status: str, diagnostic: str, context: str = "") -> tuple[Kind, str]:
    """Choose (kind, reason) from the status code and the reply text.

    ``diagnostic`` is the receiver's own words (Diagnostic-Code, SMTP reply); ``context``
    is the rest of the bounce text, consulted only when the diagnostic says nothing we
    recognise, because its boilerplate is less specific. The rules that matter most:

    - a policy refusal is never hard, whatever the status says;
    - 5.7.x is policy unless the text says the user is unknown;
    - 4.x.x is soft unless the text says policy.
    """
    text_reason = reason_from_text(diagnostic)
    status_reason = reason_from_status(status)
    if not text_reason and context and (_is_generic(status) or not status_reason):
        # The receiver's words were unhelpful and the code is vague: try the boilerplate.
        text_reason = reason_from_text(context)

    reason = text_reason or status_reason
    if status_reason and text_reason and not _is_generic(status):
        reason = _reconcile(status, status_reason, text_reason, diagnostic)

    if reason == "userunknown" and _rejected_after_data(status, diagnostic, context):
        reason = "filtered"
    if not reason:
        reason = "undefined"
    return kind_of(reason, status), reason


def _rejected_after_data(status: str, diagnostic: str, context: str) -> bool:
    """True when "user unknown" came only after DATA, from a content filter.

    A receiver that accepted RCPT TO and refused the message after seeing it has shown
    that the address exists. A 5.1.x code or a provider that names the missing account
    outright still wins: some (Yahoo) check recipients at DATA time.
    """
    if status[2:4] == "1." or _NAMED_ACCOUNT.search(diagnostic or ""):
        return False
    return _AFTER_DATA.search(f"{diagnostic}\n{context}") is not None


def _reconcile(status: str, status_reason: str, text_reason: str, diagnostic: str) -> str:
    """Settle a disagreement between a specific status code and the text.

    The text usually knows better (receivers put 5.1.1 on spam blocks), except where the
    code is precise and the text only matched a vague user-ish phrase.
    """
    sub = status.split(".", 1)[1] if "." in status else ""
    if sub == "2.3" and text_reason in ("mesgtoobig", "mailboxfull"):
        return "exceedlimit"
    if text_reason in POLICY_REASONS:
        return text_reason
    if sub.startswith("7.") and status.startswith("4") and text_reason in SOFT_REASONS:
        return text_reason  # 4.7.x "rate limited": temporary unless the text says policy
    if sub.startswith("7.") and status_reason in POLICY_REASONS:
        # 5.7.x: policy unless the receiver says the user does not exist.
        if text_reason == "userunknown" and _USER_UNKNOWN.search(diagnostic or ""):
            return text_reason
        if text_reason in HARD_REASONS:
            return status_reason
        return text_reason if text_reason in POLICY_REASONS else status_reason
    if sub in {"2.2", "2.3"} and text_reason == "userunknown":
        return status_reason
    if text_reason == "mailboxfull":
        return text_reason
    if sub in {"1.1", "1.2", "1.10", "1.6"} and text_reason in SOFT_REASONS:
        return status_reason
    return text_reason
