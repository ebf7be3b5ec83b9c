"""One preflight: every check over the digest a send would send now, and the DNS of its
From domain. Which findings block a send is written in the package docstring."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import ConfigError, Settings
from newsletter.digests.compose import preview_digest
from newsletter.digests.preview import Preview, preview_message
from newsletter.digests.render import Composition
from newsletter.errors import NotFound
from newsletter.mail.dkim import DkimKey, keys_from_settings
from newsletter.models import Digest, DigestStatus, MailingList, Subscription, SubscriptionStatus
from newsletter.preflight import dns_checks, message_checks, spam, web_probe
from newsletter.preflight.findings import Finding, Report, passed, problem
from newsletter.subscriptions.lists import find_list
from newsletter.subscriptions.tokens import make_unsubscribe_token


def _keys(settings: Settings) -> tuple[list[tuple[DkimKey, str]], Finding | None]:
    """The configured DKIM keys with the setting each comes from, or why they cannot load."""
    try:
        keys = keys_from_settings(settings)
    except ConfigError as exc:
        return [], problem("dkim", f"{exc}: a send would stop on it too", blocking=True)
    names = []
    if settings.dkim_key_file:
        names.append(f"NEWSLETTER_DKIM_KEY_FILE={settings.dkim_key_file}")
    if settings.dkim_ed25519_key_file:
        names.append(f"NEWSLETTER_DKIM_ED25519_KEY_FILE={settings.dkim_ed25519_key_file}")
    return list(zip(keys, names, strict=True)), None


def dns_findings(settings: Settings, keys: list[tuple[DkimKey, str]]) -> list[Finding]:
    production = settings.env == "production"
    strict = production or bool(keys)
    from_domain = settings.sender_domain
    if not settings.dns_server and dns_checks.reserved(from_domain):
        return [
            problem(
                "dns",
                f"not checked: the From domain {from_domain} is a reserved name with nothing "
                "published; set NEWSLETTER_FROM to an address at your own domain (or "
                "NEWSLETTER_DNS_SERVER to ask a DNS server of your own)",
                blocking=production,
            )
        ]
    resolver = dns_checks.Dns(settings.dns_server)
    found = [dns_checks.spf(resolver, from_domain, strict=strict)]
    if resolver.down is not None:
        return [
            problem(
                "dns",
                f"not checked: {resolver.down}; SPF, DKIM and DMARC of {from_domain} are "
                "unknown: check NEWSLETTER_DNS_SERVER (host[:port]) or the machine's "
                "resolver, then run the preflight again",
                blocking=False,
            )
        ]
    bounce = settings.bounces_domain
    if bounce.lower() != from_domain.lower():
        found.append(
            dns_checks.spf(resolver, bounce, strict=strict, check="spf:bounce", role="bounce")
        )
    if keys:
        found.extend(dns_checks.dkim(resolver, k, name, strict=True) for k, name in keys)
    else:
        found.append(dns_checks.no_dkim(production=production))
    dmarc, policy = dns_checks.dmarc(resolver, from_domain)
    found.append(dmarc)
    found.append(
        dns_checks.alignment(
            from_domain, [k.domain for k, _ in keys], bounce, policy, strict=strict
        )
    )
    return found


def _target(
    session: Session, settings: Settings, mlist: MailingList, digest_id: int | None
) -> tuple[Digest | Composition | None, str]:
    """What a send would send now (pick_digest's choice, composing nothing): the given
    digest, the newest draft, or the next digest rendered without being stored."""
    digest = None
    if digest_id is not None:
        digest = session.get(Digest, digest_id)
        if digest is None or digest.list_id != mlist.id:
            raise NotFound("digest", f"there is no digest {digest_id} of list {mlist.slug}")
    else:
        digest = session.scalar(
            select(Digest)
            .where(Digest.list_id == mlist.id, Digest.status == DigestStatus.draft)
            .order_by(Digest.id.desc())
            .limit(1)
        )
    if digest is not None:
        return digest, f"digest {digest.id} ({digest.status}): {digest.subject}"
    composed = preview_digest(session, settings, mlist)
    if composed is None:
        return None, ""
    return composed, f"the next digest (not composed yet): {composed.subject}"


def _reader_url(session: Session, settings: Settings, mlist: MailingList) -> str | None:
    sub_id = session.scalar(
        select(Subscription.id)
        .where(
            Subscription.list_id == mlist.id,
            Subscription.status == SubscriptionStatus.confirmed,
        )
        .limit(1)
    )
    if sub_id is None:
        return None
    return f"{settings.base_url}/unsubscribe/{make_unsubscribe_token(settings.secret, sub_id)}"


def message_findings(
    session: Session, settings: Settings, mlist: MailingList, preview: Preview
) -> list[Finding]:
    production = settings.env == "production"
    out = [message_checks.list_unsubscribe(preview, settings, production=production)]
    sample = message_checks.unsubscribe_url(preview)
    if sample is not None and sample.startswith(settings.base_url + "/unsubscribe/"):
        reader = _reader_url(session, settings, mlist)
        out.append(web_probe.one_click(settings.base_url, sample, reader))
    out.append(message_checks.visible_unsubscribe(preview))
    out.append(message_checks.size(preview))
    out.append(message_checks.links(preview))
    out.append(spam.spamassassin(preview.raw))
    return out


def run_preflight(
    session: Session, settings: Settings, list_slug: str, digest_id: int | None = None
) -> Report:
    """Every finding for the list's next send; reads only, sends and stores nothing."""
    mlist = find_list(session, list_slug)
    keys, key_error = _keys(settings)
    findings: list[Finding] = []
    if key_error is not None:
        findings.append(key_error)
    findings.extend(dns_findings(settings, keys))
    source, said = _target(session, settings, mlist, digest_id)
    if source is None:
        findings.append(
            problem(
                "digest",
                f"nothing to check: {list_slug} has no draft and no new stories since its "
                "previous digest (`newsletter stories add … --list` adds some)",
                blocking=False,
            )
        )
        return Report(list_slug, None, tuple(findings))
    findings.append(passed("digest", said))
    preview = preview_message(settings, mlist, source, dkim_keys=[k for k, _ in keys])
    findings.extend(message_findings(session, settings, mlist, preview))
    stored = source.id if isinstance(source, Digest) else None
    return Report(list_slug, stored, tuple(findings))
