"""The data model: lists, subscribers, consent, stories, digests, the delivery ledger."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class SubscriberStatus(enum.StrEnum):
    active = "active"
    bounced = "bounced"
    complained = "complained"
    suppressed = "suppressed"


class SubscriptionStatus(enum.StrEnum):
    unconfirmed = "unconfirmed"
    confirmed = "confirmed"
    unsubscribed = "unsubscribed"


class DigestStatus(enum.StrEnum):
    draft = "draft"
    # Created with NEWSLETTER_SEND_APPROVAL on: waits for a second person (sending/approval.py).
    awaiting_approval = "awaiting_approval"
    scheduled = "scheduled"
    sending = "sending"
    paused = "paused"
    cancelled = "cancelled"
    sent = "sent"


class DeliveryStatus(enum.StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    deferred = "deferred"
    failed = "failed"
    bounced = "bounced"


class MailingList(Base):
    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    schedule: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # The list's own digest templates (subject.txt, body.txt, body.html extending the
    # built-in ones block by block); None: the built-in ones.
    template_dir: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The audience (migration 0010): a welcome mail after confirmation; the digest at
    # HH:MM in each reader's own time zone instead of at once; signed click redirects
    # and an open pixel (both off unless the list turns them on); readers asked "still
    # want this?" after this many digests without a click; a weekly round-up (cron, in
    # the list's time zone) readers may choose instead of every edition; the sign-up
    # form's extra fields, stored as attributes ([{"name", "label", "required"}]).
    welcome: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    local_time: Mapped[str | None] = mapped_column(String(5))
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    track_opens: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    sunset_after: Mapped[int | None] = mapped_column(Integer)
    weekly: Mapped[str | None] = mapped_column(String(100))
    form_fields: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default="[]"
    )


class Subscriber(Base):
    __tablename__ = "subscribers"
    # The console's search: prefixes of the address and the name, readers by status
    # (on PostgreSQL the first two are COLLATE "C", migration 0009; subscriptions/search.py).
    __table_args__ = (
        Index("ix_subscribers_status", "status", "id"),
        Index("ix_subscribers_email_c", "email", "id"),
        Index("ix_subscribers_name_c", "name", "id"),
        Index("ix_subscribers_attributes", "attributes", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Normalised by email-validator: one row per address whatever its case or Unicode form.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default=SubscriberStatus.active)
    bounce_score: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What the newsroom knows of the reader beyond the address (subscriptions/attributes.py
    # validates it: a flat JSON object of short scalars), usable in templates and segments.
    # JSONB on PostgreSQL: segment filters use its containment operator and GIN index.
    attributes: Mapped[dict[str, Any]] = mapped_column(
        JSON().with_variant(JSONB(), "postgresql"), default=dict, server_default="{}"
    )
    # The reader's language (a code of LANGUAGES) and IANA time zone; None: the defaults
    # (the first language, the list's time zone).
    language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # The last click a person made (machine clicks do not count), for segments and sunset.
    last_click_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan"
    )


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("list_id", "subscriber_id"),
        # The console's counts (newsletter/stats/): per list and status, and 30-day ranges
        # read from the index alone (the list is in it).
        Index("ix_subscriptions_list_status", "list_id", "status"),
        Index("ix_subscriptions_created_at", "created_at", "list_id"),
        Index("ix_subscriptions_confirmed_at", "confirmed_at", "list_id"),
        Index("ix_subscriptions_unsubscribed_at", "unsubscribed_at", "list_id"),
        # A reader's subscriptions, and readers by subscription status (console filter).
        Index("ix_subscriptions_subscriber_status", "subscriber_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=SubscriptionStatus.unconfirmed)
    # Bumped on every (re)subscription so older confirm links stop working.
    token_nonce: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The consent record: when, from where, through what, agreeing to which wording.
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_ip: Mapped[str | None] = mapped_column(String(64))
    consent_user_agent: Mapped[str | None] = mapped_column(String(512))
    consent_source: Mapped[str] = mapped_column(String(32), default="form")
    consent_text_version: Mapped[str | None] = mapped_column(String(32))
    # "every" edition of the list, or only its "weekly" round-up (MailingList.weekly).
    frequency: Mapped[str] = mapped_column(String(16), default="every", server_default="every")
    # Why it ended (reader, sunset, bounce, complaint, operator) when it did.
    unsubscribe_reason: Mapped[str | None] = mapped_column(String(32))
    # When the "still want this?" mail went out (engagement sunset); cleared by a click.
    sunset_asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    mailing_list: Mapped[MailingList] = relationship()


class Suppression(Base):
    """Addresses never to mail again, kept as a keyed hash so erasure leaves no address."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Story(Base):
    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    lede: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")  # paragraphs separated by blank lines
    # The body as a sanitised HTML subset (stories/rich.py), lede included; "" for a
    # story stored before bodies were rich, shown from `body` instead.
    body_html: Mapped[str] = mapped_column(Text, default="", server_default="")
    url: Mapped[str | None] = mapped_column(String(2000))
    author: Mapped[str | None] = mapped_column(String(200))
    image: Mapped[str | None] = mapped_column(String(2000))  # the lead image's source URL
    image_alt: Mapped[str | None] = mapped_column(String(500))
    image_credit: Mapped[str | None] = mapped_column(String(300))
    # The lead image fetched, checked and resized for e-mail (newsletter/media/).
    image_media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    section: Mapped[str | None] = mapped_column(String(100))
    # The editor's order: stories added together keep the order given, the first leads.
    position: Mapped[int | None] = mapped_column(BigInteger, index=True)

    image_media: Mapped[Media | None] = relationship()
    guid: Mapped[str | None] = mapped_column(String(2000), unique=True)
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Media(Base):
    """An image fetched once from its source, checked and resized for e-mail: files
    <key>.<ext> (the 1x width) and <key>@2x.<ext> in the media store."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the URL
    source_url: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(50))
    width: Mapped[int] = mapped_column(Integer)  # of the 1x file, as the <img> says
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedSource(Base):
    """A feed registered for a list, polled by beat with conditional GET."""

    __tablename__ = "feed_sources"
    __table_args__ = (UniqueConstraint("list_id", "url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Digest(Base):
    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("list_id", "period_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(32), default=DigestStatus.draft)
    # Inlined once per digest; per-recipient fields are placeholders substituted at send.
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    story_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Sends cancelled part-way since the last whole one, oldest first: their stories are
    # in this digest for the readers they did not reach (digests/carry.py), as
    # [{"digest": id, "story_ids": [...]}]. Empty for nearly every digest.
    carry: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    period_key: Mapped[str | None] = mapped_column(String(64))
    pause_reason: Mapped[str | None] = mapped_column(Text)
    # Who paused a send (operator, outage, bounce_rate) and when its batches last
    # reported: a stale progress_at is how a stalled send is found and recovered.
    paused_by: Mapped[str | None] = mapped_column(String(16))
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # False while only the first chunk of the ledger is written (sending/job.py): such a
    # send is never finished, and recovery writes the rest if its task was lost.
    ledger_complete: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Two-person approval: who asked for the send, who approved it (audit actor names).
    requested_by: Mapped[str | None] = mapped_column(String(320))
    approved_by: Mapped[str | None] = mapped_column(String(320))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a scheduled send starts (status scheduled; sending/later.py, beat's send tick).
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who it goes to: a segment of the list (None: every confirmed reader), only the
    # readers of one frequency ("weekly" for the round-up; None: "every"), and the local
    # time it reaches each reader at (copied from the list when the send starts).
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    frequency: Mapped[str | None] = mapped_column(String(16))
    local_time: Mapped[str | None] = mapped_column(String(5))

    mailing_list: Mapped[MailingList] = relationship()


class DigestVariant(Base):
    """The digest without the stories a reader already has (digests/carry.py): variant
    n leaves out the stories of the n oldest sends in Digest.carry. Variant 0, the whole
    digest, is the Digest row itself."""

    __tablename__ = "digest_variants"

    digest_id: Mapped[int] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(500))
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    story_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # The language this variant is rendered in (None: the default language).
    language: Mapped[str | None] = mapped_column(String(16))


class Delivery(Base):
    """The ledger: one row per digest and recipient, the truth about who got what."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_digest_status", "digest_id", "status"),
        # A reader once per send, and every lookup by reader (the bounce policy walks one
        # reader's deliveries, newsletter/bounces/handling.py): one index for both, so
        # each ledger write maintains three indexes, not four (migration 0011).
        Index("uq_deliveries_subscriber_digest", "subscriber_id", "digest_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.queued)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A batch claims its rows (status sending) with a token; an old claim is a dead worker's.
    claim: Mapped[str | None] = mapped_column(String(40))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which DigestVariant this reader gets (0: the whole digest), fixed with the ledger.
    variant: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class BounceEvent(Base):
    __tablename__ = "bounce_events"
    # The console's 30-day bounce and policy-block counts (newsletter/stats/).
    __table_args__ = (Index("ix_bounce_events_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # hard, soft, policy, complaint, ignore
    reason: Mapped[str] = mapped_column(String(64), default="")
    status_code: Mapped[str | None] = mapped_column(String(16))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    remote_domain: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(32), default="smtp")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Same bounce seen twice (mailbox and webhook, a re-ingested file) has one row.
    fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True)


class BounceRejection(Base):
    """Bounce input refused (forged token, malformed message, bad signature), for counting."""

    __tablename__ = "bounce_rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class UserRole(enum.StrEnum):
    """Operator roles, each able to do what the one before it can (accounts/roles.py)."""

    viewer = "viewer"
    editor = "editor"
    sender = "sender"
    admin = "admin"
    owner = "owner"


class User(Base):
    """An operator of the console and the admin API (not a reader)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    role: Mapped[str] = mapped_column(String(16), default=UserRole.viewer)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserSession(Base):
    """A console login. The cookie carries a random id; only its SHA-256 is stored, so
    a copy of the database cannot be used to log in. Logout deletes the row."""

    __tablename__ = "user_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))


class ApiToken(Base):
    """A user's admin-API token: stored as SHA-256, shown once, revocable."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Who did what and when, through which face; written in the action's transaction."""

    __tablename__ = "audit_log"
    __table_args__ = (
        # The console's filters, newest first: one actor; an action prefix on PostgreSQL
        # whatever the collation (pattern ops).
        Index("ix_audit_log_actor", "actor", "id"),
        Index(
            "ix_audit_log_action_prefix",
            "action",
            "id",
            postgresql_ops={"action": "varchar_pattern_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(320))
    via: Mapped[str] = mapped_column(String(16))  # console, api, cli, system
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(500), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class StatsSnapshot(Base):
    """A maintained aggregate the console reads instead of counting big tables per
    request (newsletter/stats/): one JSON document per name, refreshed by beat."""

    __tablename__ = "stats_snapshots"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    data: Mapped[Any] = mapped_column(JSON)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Segment(Base):
    """A saved filter over a list's readers, in the segment language (newsletter/segments/)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    expression: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookEndpoint(Base):
    """An operator's URL that gets events. Its signing secret is derived from SECRET_KEY
    and `secret_nonce` (newsletter/webhooks/), so the database holds no secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret_nonce: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    description: Mapped[str] = mapped_column(String(200), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint: written in the transaction of what happened (an
    outbox), posted by a Celery task with retries; the delivery log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))  # the same for every endpoint
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)  # the JSON body, exactly as posted
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DigestLink(Base):
    """A link of a digest with click tracking on: the redirect reads the target here, so
    a tracked link can only ever lead where the digest pointed (no open redirect)."""

    __tablename__ = "digest_links"

    digest_id: Mapped[int] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"))


class Engagement(Base):
    """A click or an open, by a person or (machine true) a proxy or link scanner."""

    __tablename__ = "engagements"
    __table_args__ = (
        Index("ix_engagements_digest_story", "digest_id", "story_id"),
        Index("ix_engagements_subscriber", "subscriber_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # click, open
    link: Mapped[int | None] = mapped_column(Integer)
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    machine: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
