"""the audience: attributes, language and time zone per reader, segments, list options
(welcome, local time, click tracking, sunset, weekly round-up, form fields), outgoing
webhooks with their delivery log, tracked links and engagements

Subscriber attributes are JSONB on PostgreSQL with a GIN index: a segment's attribute
equality is a containment query (`attributes @> '{"city": "Kyiv"}'`) the index answers.

Revision ID: 0010_audience
Revises: 0009_console_indexes
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision = "0010_audience"
down_revision = "0009_console_indexes"
branch_labels = None
depends_on = None

_FALSE = sa.false()


def upgrade() -> None:
    attributes = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    with op.batch_alter_table("lists") as t:
        t.add_column(sa.Column("welcome", sa.Boolean(), nullable=False, server_default=_FALSE))
        t.add_column(sa.Column("local_time", sa.String(5), nullable=True))
        t.add_column(
            sa.Column("track_clicks", sa.Boolean(), nullable=False, server_default=_FALSE)
        )
        t.add_column(sa.Column("track_opens", sa.Boolean(), nullable=False, server_default=_FALSE))
        t.add_column(sa.Column("sunset_after", sa.Integer(), nullable=True))
        t.add_column(sa.Column("weekly", sa.String(100), nullable=True))
        t.add_column(sa.Column("form_fields", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("subscribers") as t:
        t.add_column(sa.Column("attributes", attributes, nullable=False, server_default="{}"))
        t.add_column(sa.Column("language", sa.String(16), nullable=True))
        t.add_column(sa.Column("timezone", sa.String(64), nullable=True))
        t.add_column(sa.Column("last_click_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_subscribers_attributes", "subscribers", ["attributes"], postgresql_using="gin"
        )
    else:
        op.create_index("ix_subscribers_attributes", "subscribers", ["attributes"])
    with op.batch_alter_table("subscriptions") as t:
        t.add_column(
            sa.Column("frequency", sa.String(16), nullable=False, server_default="every")
        )
        t.add_column(sa.Column("unsubscribe_reason", sa.String(32), nullable=True))
        t.add_column(sa.Column("sunset_asked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "list_id", sa.Integer(), sa.ForeignKey("lists.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_segments_list_id", "segments", ["list_id"])
    with op.batch_alter_table("digests") as t:
        t.add_column(sa.Column("segment_id", sa.Integer(), nullable=True))
        t.add_column(sa.Column("frequency", sa.String(16), nullable=True))
        t.add_column(sa.Column("local_time", sa.String(5), nullable=True))
        t.create_foreign_key(
            "fk_digests_segment_id", "segments", ["segment_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("digest_variants") as t:
        t.add_column(sa.Column("language", sa.String(16), nullable=True))
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret_nonce", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("description", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", big, primary_key=True),
        sa.Column(
            "endpoint_id",
            sa.Integer(),
            sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "id"]
    )
    op.create_table(
        "digest_links",
        sa.Column(
            "digest_id",
            sa.Integer(),
            sa.ForeignKey("digests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column(
            "story_id", sa.Integer(), sa.ForeignKey("stories.id", ondelete="SET NULL"), nullable=True
        ),
    )
    op.create_table(
        "engagements",
        sa.Column("id", big, primary_key=True),
        sa.Column(
            "digest_id",
            sa.Integer(),
            sa.ForeignKey("digests.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("link", sa.Integer(), nullable=True),
        sa.Column(
            "story_id", sa.Integer(), sa.ForeignKey("stories.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column(
            "subscriber_id",
            sa.Integer(),
            sa.ForeignKey("subscribers.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("machine", sa.Boolean(), nullable=False, server_default=_FALSE),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_engagements_digest_story", "engagements", ["digest_id", "story_id"])
    op.create_index("ix_engagements_subscriber", "engagements", ["subscriber_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_engagements_subscriber", table_name="engagements")
    op.drop_index("ix_engagements_digest_story", table_name="engagements")
    op.drop_table("engagements")
    op.drop_table("digest_links")
    op.drop_index("ix_webhook_deliveries_endpoint", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    with op.batch_alter_table("digest_variants") as t:
        t.drop_column("language")
    with op.batch_alter_table("digests") as t:
        t.drop_constraint("fk_digests_segment_id", type_="foreignkey")
        t.drop_column("local_time")
        t.drop_column("frequency")
        t.drop_column("segment_id")
    op.drop_index("ix_segments_list_id", table_name="segments")
    op.drop_table("segments")
    with op.batch_alter_table("subscriptions") as t:
        t.drop_column("sunset_asked_at")
        t.drop_column("unsubscribe_reason")
        t.drop_column("frequency")
    op.drop_index("ix_subscribers_attributes", table_name="subscribers")
    with op.batch_alter_table("subscribers") as t:
        t.drop_column("last_click_at")
        t.drop_column("timezone")
        t.drop_column("language")
        t.drop_column("attributes")
    with op.batch_alter_table("lists") as t:
        t.drop_column("form_fields")
        t.drop_column("weekly")
        t.drop_column("sunset_after")
        t.drop_column("track_opens")
        t.drop_column("track_clicks")
        t.drop_column("local_time")
        t.drop_column("welcome")
