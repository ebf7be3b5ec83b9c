"""rich digests: story bodies as HTML, lead images (media), sections, the editor's order,
feed sources per list, a list's own templates

Revision ID: 0007_rich_digest
Revises: 0006_carry
"""
from alembic import op
import sqlalchemy as sa


revision = "0007_rich_digest"
down_revision = "0006_carry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_hash", sa.String(length=64), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_hash"),
    )
    op.create_table(
        "feed_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("etag", sa.String(length=500), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("list_id", "url"),
    )
    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template_dir", sa.String(length=1000), nullable=True))
    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_html", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("image_alt", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("image_credit", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("image_media_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("section", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("position", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_stories_position", ["position"], unique=False)
        batch_op.create_foreign_key(
            "fk_stories_image_media_id_media", "media", ["image_media_id"], ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.drop_constraint("fk_stories_image_media_id_media", type_="foreignkey")
        batch_op.drop_index("ix_stories_position")
        for column in ("position", "section", "image_media_id", "image_credit", "image_alt",
                       "body_html"):
            batch_op.drop_column(column)
    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.drop_column("template_dir")
    op.drop_table("feed_sources")
    op.drop_table("media")
