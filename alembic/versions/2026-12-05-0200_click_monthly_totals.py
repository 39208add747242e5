"""click monthly totals: what click retention keeps of a dropped month (counts, no personal data)

Revision ID: 0007_click_monthly_totals
Revises: 0006_clicks_partitioned
Create Date: 2026-12-05 02:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_click_monthly_totals"
down_revision: str | Sequence[str] | None = "0006_clicks_partitioned"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "click_monthly_totals",
        sa.Column("link_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("human", sa.BigInteger(), nullable=False),
        sa.Column("bots", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["referral_links.id"],
            name=op.f("fk_click_monthly_totals_link_id_referral_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "link_id", "month", "channel", name=op.f("pk_click_monthly_totals")
        ),
    )
    op.create_index(
        "ix_click_monthly_totals_program_month",
        "click_monthly_totals",
        ["program_id", "month"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_click_monthly_totals_program_month", table_name="click_monthly_totals")
    op.drop_table("click_monthly_totals")
