"""referral velocity indexes: the claim's fraud screen counts recent referrals per link and per
hashed IP; without these indexes the IP count read every referral of every program

Revision ID: 0008_referral_velocity_indexes
Revises: 0007_click_monthly_totals
Create Date: 2026-12-05 06:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_referral_velocity_indexes"
down_revision: str | Sequence[str] | None = "0007_click_monthly_totals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_referrals_link_created", "referrals", ["link_id", "created_at"])
    op.create_index(
        "ix_referrals_ip_created",
        "referrals",
        ["ip_hash", "created_at"],
        postgresql_where=sa.text("ip_hash IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_referrals_ip_created", table_name="referrals")
    op.drop_index("ix_referrals_link_created", table_name="referrals")
