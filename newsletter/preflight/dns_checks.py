"""SPF, DKIM and DMARC of the From domain as DNS publishes them (dnspython).

The resolver is the one NEWSLETTER_DNS_SERVER names (host[:port]) or, unset, the
machine's. Timeouts are short: a preflight must not hang a send for a slow resolver, and
once the server has not answered, the remaining look-ups are not tried again (one clear
finding instead of one timeout per record).

Alignment (DMARC) is relaxed: two domains align when their organisational domains are the
same. The organisational domain here is the last two labels, three under a few well-known
two-label public suffixes (co.uk, com.au …): a plain "ends with the registered domain",
not the Public Suffix List, which is good enough to say whether a bounce or DKIM domain is
the operator's own.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.resolver
from cryptography.hazmat.primitives import serialization

from newsletter.mail.dkim import DkimKey
from newsletter.netnames import never_resolves
from newsletter.preflight.findings import Finding, passed, problem

TIMEOUT_SECONDS = 2.0  # one server's answer to one query
LIFETIME_SECONDS = 3.0  # one look-up in all
TWO_LABEL_SUFFIXES = frozenset(
    {"co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "org.au", "co.nz", "co.jp",
     "com.br", "co.za", "com.cn", "co.in", "com.mx", "com.tr", "co.il"}
)  # fmt: skip
LOCAL_TLDS = ("localhost", "local")  # RFC 6761, 6762


def reserved(domain: str) -> bool:
    """Names that are never published in the public DNS (RFC 2606/6761/6762)."""
    d = domain.lower().rstrip(".")
    return "." not in d or d.rsplit(".", 1)[-1] in LOCAL_TLDS or never_resolves(d)


def organisational(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    take = 3 if ".".join(labels[-2:]) in TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-take:])


def aligned(a: str, b: str, *, strict: bool = False) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b if strict else organisational(a) == organisational(b)


@dataclass(frozen=True)
class Txt:
    """A TXT look-up: the records (each one's strings joined), or why there are none."""

    name: str
    records: tuple[str, ...] = ()
    missing: str | None = None  # "NXDOMAIN" or "no TXT record": the name has none
    failed: str | None = None  # the question got no answer at all (timeout, refused …)


def parse_server(value: str) -> tuple[str, int]:
    """NEWSLETTER_DNS_SERVER: host, host:port, [v6]:port or a bare IPv6 address."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, "53"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"NEWSLETTER_DNS_SERVER: bad port in {value!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = socket.gethostbyname(host)
        except OSError as exc:
            raise ValueError(f"NEWSLETTER_DNS_SERVER: cannot resolve {host!r} ({exc})") from None
    return host, int(port)


class Dns:
    """TXT look-ups through one resolver; stops asking once the server did not answer."""

    def __init__(self, server: str | None) -> None:
        self.label = server or "the system resolver"
        self.down: str | None = None
        self.resolver: dns.resolver.Resolver | None = None
        try:
            if server:
                host, port = parse_server(server)
                self.resolver = dns.resolver.Resolver(configure=False)
                self.resolver.nameservers = [host]
                self.resolver.port = port
            else:
                self.resolver = dns.resolver.Resolver()
        except (ValueError, dns.resolver.NoResolverConfiguration, OSError) as exc:
            self.down = str(exc) or "no resolver configured (/etc/resolv.conf)"
            return
        self.resolver.timeout = TIMEOUT_SECONDS
        self.resolver.lifetime = LIFETIME_SECONDS

    def txt(self, name: str) -> Txt:
        if self.down is not None or self.resolver is None:
            return Txt(name, failed=self.down or "no resolver")
        try:
            answer = self.resolver.resolve(name, "TXT", search=False)
        except dns.resolver.NXDOMAIN:
            return Txt(name, missing="the name does not exist (NXDOMAIN)")
        except dns.resolver.NoAnswer:
            return Txt(name, missing="the name has no TXT record")
        except dns.exception.Timeout:
            self.down = f"{self.label} did not answer within {LIFETIME_SECONDS:g} s"
            return Txt(name, failed=self.down)
        except dns.resolver.NoNameservers as exc:
            return Txt(name, failed=f"{self.label} could not answer ({exc.msg.split(':')[0]})")
        except (dns.exception.DNSException, OSError) as exc:
            return Txt(name, failed=f"{self.label}: {exc.__class__.__name__}: {exc}")
        records = []
        for rdata in answer:
            strings = getattr(rdata, "strings", ())
            records.append(b"".join(strings).decode("utf-8", "replace"))
        return Txt(name, records=tuple(records))


def tags(record: str) -> dict[str, str]:
    """`v=DKIM1; k=rsa; p=…` → {"v": "DKIM1", …}; white space inside values removed."""
    out: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out.setdefault(key.strip().lower(), "".join(value.split()))
    return out


def not_asked(check: str, txt: Txt) -> Finding:
    return problem(
        check,
        f"not checked: TXT {txt.name}: {txt.failed}; check NEWSLETTER_DNS_SERVER or the "
        "machine's resolver, then run the preflight again",
        blocking=False,
    )


# SPF ---------------------------------------------------------------------------------


def spf(resolver: Dns, domain: str, *, strict: bool, check: str = "spf", role: str = "From"
        ) -> Finding:  # fmt: skip
    """One v=spf1 record ending in -all or ~all (or handing over with redirect=)."""
    txt = resolver.txt(domain)
    if txt.failed:
        return not_asked(check, txt)
    found = [r for r in txt.records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
    example = '"v=spf1 include:<your SMTP relay\'s SPF domain> -all"'
    if not found:
        return problem(
            check,
            f"no SPF record at {domain} (the {role} domain; {txt.missing or 'no v=spf1 TXT'}): "
            f"publish TXT {domain} {example} naming the servers that send its mail",
            blocking=strict,
        )
    if len(found) > 1:
        return problem(
            check,
            f"{len(found)} SPF records at {domain}: receivers treat more than one as a "
            "permanent error (RFC 7208 4.5) and SPF fails for every message; merge them into "
            "one v=spf1 record: " + " | ".join(found),
            blocking=strict,
        )
    record = found[0]
    terms = record.split()[1:]
    final = [t.lower() for t in terms if t.lower().lstrip("+-~?") == "all"]
    if final and final[-1] in ("all", "+all"):
        return problem(
            check,
            f"the SPF record at {domain} ends in {final[-1]}: anyone may send as {domain}; "
            f"end it with -all (or ~all) after the servers that really send: {record}",
            blocking=False,
        )
    if final and final[-1] in ("-all", "~all"):
        return passed(check, f"{domain} ({role} domain): {record}")
    if any(t.lower().startswith("redirect=") for t in terms):
        return passed(check, f"{domain} ({role} domain) hands over with redirect=: {record}")
    return problem(
        check,
        f"the SPF record at {domain} does not end in -all or ~all ({record}): receivers treat "
        "other senders as neutral; add -all (or ~all) at the end",
        blocking=False,
    )


# DKIM --------------------------------------------------------------------------------


def _key_bytes(p: str) -> bytes | None:
    try:
        return base64.b64decode(p, validate=True)
    except ValueError:
        return None


def _same_key(published: bytes, configured: bytes) -> bool:
    if published == configured:
        return True
    try:  # an RSA key published as SubjectPublicKeyInfo in another DER encoding
        a = serialization.load_der_public_key(published)
        b = serialization.load_der_public_key(configured)
    except (ValueError, TypeError):
        return False
    return a.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == b.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _short(p: str) -> str:
    return p if len(p) <= 24 else f"{p[:12]}…{p[-8:]}"


def dkim(resolver: Dns, key: DkimKey, setting: str, *, strict: bool) -> Finding:
    """The record at <selector>._domainkey.<d=> carries the public half of the configured key."""
    name = f"{key.selector}._domainkey.{key.domain}"
    check = f"dkim:{key.selector}"
    expected = key.public_dns_record().decode()
    want = tags(expected)
    publish = f'publish TXT {name} "{expected}"'
    txt = resolver.txt(name)
    if txt.failed:
        return not_asked(check, txt)
    records = [tags(r) for r in txt.records]
    records = [t for t in records if "p" in t and t.get("v", "DKIM1") == "DKIM1"]
    if not records:
        why = txt.missing or "no v=DKIM1 record"
        return problem(
            check,
            f"no DKIM key published for selector {key.selector} at {name} ({why}): receivers "
            f"cannot verify the signature of {setting}; {publish}",
            blocking=strict,
        )
    configured = _key_bytes(want["p"]) or b""
    for t in records:
        published = _key_bytes(t["p"])
        if published is not None and _same_key(published, configured):
            if t.get("k", "rsa") != want["k"]:
                return problem(
                    check,
                    f"the record at {name} says k={t.get('k', 'rsa')} for a {want['k']} key: "
                    f"{publish}",
                    blocking=strict,
                )
            return passed(check, f"{name} publishes the key of {setting} ({key.algorithm})")
    shown = ", ".join(f"k={t.get('k', 'rsa')} p={_short(t['p']) or '(empty: revoked)'}"
                      for t in records)  # fmt: skip
    return problem(
        check,
        f"the key published for selector {key.selector} at {name} ({shown}) is not the "
        f"configured one ({setting}): every signature would fail; {publish} "
        "(or configure the private key that belongs to the published record)",
        blocking=True,
    )


def no_dkim(*, production: bool) -> Finding:
    return problem(
        "dkim",
        "no DKIM key configured: messages leave unsigned and DMARC can pass only through SPF; "
        "set NEWSLETTER_DKIM_KEY_FILE (a PEM private key, RSA 2048 or Ed25519), "
        "NEWSLETTER_DKIM_SELECTOR (and NEWSLETTER_DKIM_DOMAIN if not the From domain), then "
        "publish the record this preflight names",
        blocking=production,
    )


# DMARC -------------------------------------------------------------------------------


def dmarc_record(resolver: Dns, domain: str) -> tuple[Txt, dict[str, str] | None, list[str]]:
    """The DMARC policy for `domain`: at _dmarc.<domain>, else at the organisational
    domain's (RFC 7489 6.6.3). Returns the last look-up, the tags, and the raw records."""
    names = [f"_dmarc.{domain}"]
    org = organisational(domain)
    if org != domain.lower():
        names.append(f"_dmarc.{org}")
    txt = Txt(names[0])
    for name in names:
        txt = resolver.txt(name)
        if txt.failed:
            return txt, None, []
        found = [r for r in txt.records if r.replace(" ", "").upper().startswith("V=DMARC1")]
        if found:
            return txt, tags(found[0]) if len(found) == 1 else None, found
    return txt, None, []


def dmarc(resolver: Dns, domain: str) -> tuple[Finding, dict[str, str]]:
    txt, policy, found = dmarc_record(resolver, domain)
    check = "dmarc"
    if txt.failed:
        return not_asked(check, txt), {}
    add = (
        f'add TXT _dmarc.{domain} "v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}" '
        "(Gmail and Yahoo expect one from bulk senders), then move p= to quarantine or "
        "reject once the reports show only your own mail"
    )
    if not found:
        return problem(check, f"no DMARC record at _dmarc.{domain}: {add}", blocking=False), {}
    if policy is None:
        return problem(
            check,
            f"{len(found)} DMARC records at {txt.name}: receivers ignore them all; keep one",
            blocking=False,
        ), {}
    if policy.get("p", "").lower() not in ("none", "quarantine", "reject"):
        return problem(
            check,
            f"the DMARC record at {txt.name} has no valid p= (none, quarantine or reject): "
            f"{found[0]}; {add}",
            blocking=False,
        ), policy
    return passed(check, f"{txt.name}: {found[0]}"), policy


def alignment(
    from_domain: str,
    dkim_domains: Sequence[str],
    bounce_domain: str,
    policy: dict[str, str],
    *,
    strict: bool,
) -> Finding:
    """DMARC passes when SPF (the bounce domain) or DKIM (d=) aligns with From."""
    strict_dkim = policy.get("adkim", "r").lower() == "s"
    strict_spf = policy.get("aspf", "r").lower() == "s"
    how = "relaxed alignment: same organisational domain"
    dkim_ok = [d for d in dkim_domains if aligned(d, from_domain, strict=strict_dkim)]
    spf_ok = aligned(bounce_domain, from_domain, strict=strict_spf)
    parts = []
    if dkim_domains:
        parts.append(f"DKIM d={', '.join(sorted(set(dkim_domains)))} "
                     f"{'aligns' if dkim_ok else 'does not align'}")  # fmt: skip
    else:
        parts.append("no DKIM signature")
    parts.append(f"bounce domain {bounce_domain} {'aligns' if spf_ok else 'does not align'}")
    said = f"From {from_domain}: {'; '.join(parts)} ({how})"
    if dkim_ok or spf_ok:
        return passed("alignment", said)
    return problem(
        "alignment",
        f"{said}: DMARC fails for every message; set NEWSLETTER_DKIM_DOMAIN or "
        f"NEWSLETTER_BOUNCE_DOMAIN to {from_domain} or a subdomain of "
        f"{organisational(from_domain)}",
        blocking=strict,
    )
