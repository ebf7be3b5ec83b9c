"""One verdict for a bounce a provider reports: its own flag and the receiver's words.

Every provider webhook (:mod:`newsletter.bounces.webhooks`) maps its payload to plain
fields - the recipient, the provider's own verdict (a kind and a default reason), the
status code and the diagnostic text - and :func:`verdict` decides. The rules:

=====================  ================  ======================  ========================
provider says          text says policy  text says hard          text says soft
=====================  ================  ======================  ========================
nothing (``None``)     text              text                    text
``final=True``,        provider          provider                provider
complaint, ignore
hard                   text (policy)     hard, text's reason     hard, text's reason if a
                                                                 hard one, else provider's
soft                   text (policy)     soft, text's reason     soft, text's reason if
                                                                 defined, else provider's
policy                 text (policy)     policy, provider's      text (soft)
                                         reason
=====================  ================  ======================  ========================

With ``same_kind_only`` (Postmark, whose bounce types are precise) the text's reason
refines a hard or soft verdict only when the text's own kind is the same: "hard, 4.x.x
user unknown" stays the provider's reason, and "soft, 550 user unknown" too.

The guiding rule is the one in :mod:`newsletter.bounces.classify`: a policy refusal (our
IP, our content) is never hard, whatever the provider calls it, unless the provider's
own verdict is final (a precise bounce type it decided itself).
"""

from __future__ import annotations

from newsletter.bounces.classify import HARD_REASONS, Kind, classify
from newsletter.bounces.parse import BounceResult
from newsletter.subscriptions.addresses import domain_of


def decide(
    provider_kind: Kind | None,
    provider_reason: str,
    status: str,
    diagnostic: str,
    *,
    final: bool = False,
    same_kind_only: bool = False,
) -> tuple[Kind, str]:
    """(kind, reason) from the provider's verdict and the text; see the module's table."""
    if provider_kind is not None and (final or provider_kind in ("complaint", "ignore")):
        return provider_kind, provider_reason
    kind, reason = classify(status, diagnostic)
    if provider_kind is None or kind == "policy":
        return kind, reason
    if provider_kind == "policy":
        return ("policy", provider_reason) if kind == "hard" else (kind, reason)
    if same_kind_only:
        fits = kind == provider_kind
    else:
        fits = provider_kind == "soft" or reason in HARD_REASONS
    return provider_kind, reason if fits and reason != "undefined" else provider_reason


def verdict(
    recipient: str,
    provider_kind: Kind | None,
    provider_reason: str = "undefined",
    status: str = "",
    diagnostic: str = "",
    *,
    final: bool = False,
    same_kind_only: bool = False,
    message_id: str = "",
    feedback_type: str = "",
    action: str = "",
    remote_mta: str = "",
) -> BounceResult:
    """The BounceResult for one recipient a provider reports.

    ``provider_kind``/``provider_reason`` are the provider's own verdict (None: it has
    none, the text decides); ``final`` makes it stand whatever the text says (complaints
    and ignores always do). ``feedback_type`` defaults to ``abuse`` for a complaint.
    """
    kind, reason = decide(
        provider_kind,
        provider_reason,
        status,
        diagnostic,
        final=final,
        same_kind_only=same_kind_only,
    )
    return BounceResult(
        recipient=recipient,
        kind=kind,
        reason=reason,
        status=status,
        diagnostic=diagnostic,
        remote_domain=domain_of(recipient),
        feedback_type=feedback_type or ("abuse" if kind == "complaint" else ""),
        action=action,
        remote_mta=remote_mta,
        original_message_id=message_id,
    )
