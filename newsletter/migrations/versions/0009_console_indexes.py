"""the console's filters on an index (found by bench/console.py on 1 M readers):
subscriptions by reader and status, the audit log by actor and by action prefix

* subscriptions (subscriber_id, status): "readers with an unsubscribed (unconfirmed, …)
  subscription", newest first, is a merge with this index instead of a scan of every
  subscription (600 ms → 0.4 ms); a reader's page and the cascade when a reader is erased
  find the reader's subscriptions on it too (the unique key leads with list_id).
* audit_log (actor, id): one person's entries newest first, however long the log.
* audit_log (action varchar_pattern_ops, id): an action prefix ("sends", "users.role") is
  a range whatever the database collation (a plain index cannot serve LIKE 'x%' unless
  the collation is C); without it a rare action walked the whole log.

Revision ID: 0009_console_indexes
Revises: 0009_stats
"""

from alembic import op

revision = "0009_console_indexes"
# After the other console migrations, so the tree keeps one head (linearised at merge).
down_revision = "0009_stats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_subscriptions_subscriber_status", "subscriptions", ["subscriber_id", "status"]
    )
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "id"])
    op.create_index(
        "ix_audit_log_action_prefix",
        "audit_log",
        ["action", "id"],
        postgresql_ops={"action": "varchar_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_action_prefix", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_subscriptions_subscriber_status", table_name="subscriptions")
