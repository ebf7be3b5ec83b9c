"""the console's digest page: a send scheduled for a chosen time (digests.send_at)

Revision ID: 0009_console_digests
Revises: 0008_console
"""

from alembic import op
import sqlalchemy as sa


revision = "0009_console_digests"
down_revision = "0008_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("send_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("send_at")
