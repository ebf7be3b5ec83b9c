"""the console's subscriber search: address and name prefixes and the reader's status
on an index, so a page of a million readers is a short index range

Revision ID: 0009_subscriber_search
Revises: 0009_console_digests
"""

from alembic import op


revision = "0009_subscriber_search"
down_revision = "0009_console_digests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscribers_status", "subscribers", ["status", "id"])
    # On PostgreSQL the keys are compared COLLATE "C" (search.py) so a prefix is a byte
    # range whatever the database's collation; SQLite compares bytes already.
    if op.get_bind().dialect.name == "postgresql":
        op.execute('CREATE INDEX ix_subscribers_email_c ON subscribers ((email COLLATE "C"), id)')
        op.execute('CREATE INDEX ix_subscribers_name_c ON subscribers ((name COLLATE "C"), id)')
    else:
        op.create_index("ix_subscribers_email_c", "subscribers", ["email", "id"])
        op.create_index("ix_subscribers_name_c", "subscribers", ["name", "id"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_name_c", table_name="subscribers")
    op.drop_index("ix_subscribers_email_c", table_name="subscribers")
    op.drop_index("ix_subscribers_status", table_name="subscribers")
