"""What the operator sees: recent bounce events, policy blocks per receiving domain, refusals.

Policy blocks are shown per domain because they are about our sending (a listed IP, a
DMARC failure, content filters at one provider), so the operator needs to see where it
happens, not which readers were affected. Used by `bounces list` and `GET /api/bounces`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, get_args

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.bounces.classify import Kind
from newsletter.models import BounceEvent, BounceRejection, Subscriber, utcnow

KINDS: tuple[Kind, ...] = get_args(Kind)  # hard, soft, policy, complaint, ignore


def bounce_report(
    session: Session, *, limit: int = 100, kind: str | None = None, days: int = 30
) -> dict[str, Any]:
    """``events`` (newest first), ``totals`` per kind, ``policy_by_domain``, ``rejected``,
    the last three over the past ``days``."""
    since = utcnow() - timedelta(days=days)
    query = (
        select(BounceEvent, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == BounceEvent.subscriber_id)
        .order_by(BounceEvent.id.desc())
        .limit(limit)
    )
    if kind:
        query = query.where(BounceEvent.kind == kind)
    events = [
        {
            "id": e.id,
            "at": e.created_at.isoformat(),
            "email": email,
            "kind": e.kind,
            "reason": e.reason,
            "status": e.status_code,
            "diagnostic": e.diagnostic,
            "remote_domain": e.remote_domain,
            "source": e.source,
            "delivery_id": e.delivery_id,
        }
        for e, email in session.execute(query)
    ]
    totals: dict[str, int] = dict.fromkeys(KINDS, 0)
    for k, n in session.execute(
        select(BounceEvent.kind, func.count())
        .where(BounceEvent.created_at >= since)
        .group_by(BounceEvent.kind)
    ):
        totals[k] = n
    policy = [
        {"domain": domain or "(unknown)", "count": n, "last": last.isoformat()}
        for domain, n, last in session.execute(
            select(BounceEvent.remote_domain, func.count(), func.max(BounceEvent.created_at))
            .where(BounceEvent.kind == "policy", BounceEvent.created_at >= since)
            .group_by(BounceEvent.remote_domain)
            .order_by(func.count().desc(), BounceEvent.remote_domain)
        )
    ]
    rejected = [
        {"source": source, "reason": reason, "count": n}
        for source, reason, n in session.execute(
            select(BounceRejection.source, BounceRejection.reason, func.count())
            .where(BounceRejection.created_at >= since)
            .group_by(BounceRejection.source, BounceRejection.reason)
            .order_by(BounceRejection.source, BounceRejection.reason)
        )
    ]
    return {
        "days": days,
        "totals": totals,
        "policy_by_domain": policy,
        "rejected": rejected,
        "events": events,
    }
