"""indexes for the foreign keys that reads filter by

Revision ID: 0003_fk_indexes
Revises: 0002_attr
Create Date: 2026-11-23 01:30:00+00:00

A page of referrals reads its rewards by referral id, an advocate's attribution chains are found
by advocate id, an endpoint's deliveries by endpoint id: without these indexes each of those
reads scanned its whole table (the rewards' unique constraint leads with rule_id). On a large
existing table, create them by hand first with CREATE INDEX CONCURRENTLY under the same names;
this migration then skips them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_fk_indexes"
down_revision: str | Sequence[str] | None = "0002_attr"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_rewards_referral_id", "rewards", "referral_id"),
    ("ix_attribution_decisions_advocate_id", "attribution_decisions", "advocate_id"),
    ("ix_webhook_deliveries_endpoint_id", "webhook_deliveries", "endpoint_id"),
)


def upgrade() -> None:
    for name, table, column in _INDEXES:
        op.create_index(name, table, [column], if_not_exists=True)


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
