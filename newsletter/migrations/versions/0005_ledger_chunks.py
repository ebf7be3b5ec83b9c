"""ledger written in chunks: digests.ledger_complete (true for every existing digest)

Revision ID: 0005_ledger_chunks
Revises: 0004_bounces
"""
from alembic import op
import sqlalchemy as sa


revision = "0005_ledger_chunks"
down_revision = "0004_bounces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ledger_complete", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.drop_column("ledger_complete")
