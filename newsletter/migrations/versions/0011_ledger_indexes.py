"""a leaner ledger: one index by reader instead of two

Every ledger write (the INSERT of a send's rows, its claim and its fold, neither of them
HOT since both change the indexed status) adds an entry to each index of deliveries.
The unique key (digest_id, subscriber_id) and ix_deliveries_subscriber (subscriber_id)
become one unique index (subscriber_id, digest_id): it keeps a reader in a send's ledger
once (the ledger's ON CONFLICT infers a unique index whatever its column order), and it
answers every lookup by reader the old index did. A send's rows by digest are found on
ix_deliveries_digest_status, as before. Four indexes per row version become three.

Revision ID: 0011_ledger_indexes
Revises: 0010_audience
"""

from alembic import op

revision = "0011_ledger_indexes"
down_revision = "0010_audience"
branch_labels = None
depends_on = None

# SQLite keeps the old unique key unnamed; batch mode names it like PostgreSQL's default.
_NAMES = {"uq": "%(table_name)s_%(column_0_N_name)s_key"}
_OLD_KEY = "deliveries_digest_id_subscriber_id_key"


def upgrade() -> None:
    with op.batch_alter_table("deliveries", naming_convention=_NAMES) as t:
        t.drop_constraint(_OLD_KEY, type_="unique")
        t.drop_index("ix_deliveries_subscriber")
        t.create_index(
            "uq_deliveries_subscriber_digest", ["subscriber_id", "digest_id"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", naming_convention=_NAMES) as t:
        t.drop_index("uq_deliveries_subscriber_digest")
        t.create_index("ix_deliveries_subscriber", ["subscriber_id"], unique=False)
        t.create_unique_constraint(_OLD_KEY, ["digest_id", "subscriber_id"])
