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
    # Expression indexes (not in the models: autogenerate does not compare them). On
    # PostgreSQL the key is compared COLLATE "C" (search.py) so a prefix is a byte range
    # whatever the database's collation; SQLite compares bytes already.
    if op.get_bind().dialect.name == "postgresql":
        op.execute('CREATE INDEX ix_subscribers_email_c ON subscribers ((email COLLATE "C"), id)')
        op.execute(
            'CREATE INDEX ix_subscribers_name_c ON subscribers ((lower(name) COLLATE "C"), id)'
        )
    else:
        op.execute("CREATE INDEX ix_subscribers_name_c ON subscribers (lower(name), id)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_subscribers_email_c")
    op.execute("DROP INDEX ix_subscribers_name_c")
    op.drop_index("ix_subscribers_status", table_name="subscribers")
