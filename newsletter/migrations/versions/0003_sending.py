"""sending engine: delivery claims and send pause/progress state

Revision ID: 0003_sending
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import newsletter.models


revision = "0003_sending"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("claimed_at", newsletter.models.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_by", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("progress_at", newsletter.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.drop_column("progress_at")
        batch_op.drop_column("paused_by")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claim")
