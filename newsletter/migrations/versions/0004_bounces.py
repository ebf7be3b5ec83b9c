"""bounces: deliveries by subscriber, event fingerprints for idempotent ingestion, a count of refused bounce input

Revision ID: 0004_bounces
Revises: 0003_sending
"""
from alembic import op
import sqlalchemy as sa
import newsletter.models


revision = "0004_bounces"
down_revision = "0003_sending"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_subscriber", ["subscriber_id"], unique=False)
    with op.batch_alter_table("bounce_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_bounce_events_fingerprint", ["fingerprint"])
    op.create_table(
        "bounce_rejections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("created_at", newsletter.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bounce_rejections", schema=None) as batch_op:
        batch_op.create_index("ix_bounce_rejections_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bounce_rejections", schema=None) as batch_op:
        batch_op.drop_index("ix_bounce_rejections_created_at")
    op.drop_table("bounce_rejections")
    with op.batch_alter_table("bounce_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_bounce_events_fingerprint", type_="unique")
        batch_op.drop_column("fingerprint")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_subscriber")
