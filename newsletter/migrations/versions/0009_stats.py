"""the console's maintained counts: indexes their refresh reads (newsletter/stats/)

Each refresh query is one GROUP BY over an index instead of a scan of a million rows:
per-list counts over (list_id, status), the 30-day growth over a range of each
subscription timestamp with the list beside it (an index-only scan), the bounce and
policy-block summaries over a range of bounce_events.created_at.

Revision ID: 0009_stats
Revises: 0009_subscriber_search
"""

from alembic import op


revision = "0009_stats"
# After the other console migrations, so the tree keeps one head (linearised at merge).
down_revision = "0009_subscriber_search"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_subscriptions_list_status", "subscriptions", ["list_id", "status"]),
    ("ix_subscriptions_created_at", "subscriptions", ["created_at", "list_id"]),
    ("ix_subscriptions_confirmed_at", "subscriptions", ["confirmed_at", "list_id"]),
    ("ix_subscriptions_unsubscribed_at", "subscriptions", ["unsubscribed_at", "list_id"]),
    ("ix_bounce_events_created_at", "bounce_events", ["created_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
