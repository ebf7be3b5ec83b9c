"""stories of a send cancelled part-way go to the readers it did not reach:
digests.carry, digest_variants, deliveries.variant

Revision ID: 0006_carry
Revises: 0005_ledger_chunks
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_carry"
down_revision = "0005_ledger_chunks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("carry", sa.JSON(), server_default="[]", nullable=False))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variant", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "digest_variants",
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("story_ids", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["digest_id"], ["digests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("digest_id", "number"),
    )


def downgrade() -> None:
    op.drop_table("digest_variants")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("variant")
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.drop_column("carry")
