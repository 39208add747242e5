"""referral and program daily rollups for reporting

Revision ID: 0002_attr
Revises: 0002_landing
Create Date: 2026-11-22 18:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_attr"
down_revision: str | Sequence[str] | None = "0002_landing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MEASURES = (
    "leads",
    "opportunities",
    "pipeline_minor",
    "won",
    "won_minor",
    "revenue_minor",
    "sourced_revenue_minor",
    "expansion_revenue_minor",
)


def upgrade() -> None:
    op.create_table(
        "referral_daily_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *(sa.Column(m, sa.BigInteger(), server_default="0", nullable=False) for m in _MEASURES),
        sa.PrimaryKeyConstraint(
            "day",
            "program_id",
            "advocate_id",
            "channel",
            "currency",
            name=op.f("pk_referral_daily_rollups"),
        ),
    )
    op.create_index(
        "ix_referral_daily_rollups_program_day",
        "referral_daily_rollups",
        ["program_id", "day"],
        unique=False,
    )
    op.create_index(
        "ix_referral_daily_rollups_advocate_day",
        "referral_daily_rollups",
        ["advocate_id", "day"],
        unique=False,
    )
    op.create_table(
        "program_daily_rollups",
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *(sa.Column(m, sa.BigInteger(), server_default="0", nullable=False) for m in _MEASURES),
        sa.PrimaryKeyConstraint(
            "program_id", "day", "channel", "currency", name=op.f("pk_program_daily_rollups")
        ),
    )


def downgrade() -> None:
    op.drop_table("program_daily_rollups")
    op.drop_index("ix_referral_daily_rollups_advocate_day", table_name="referral_daily_rollups")
    op.drop_index("ix_referral_daily_rollups_program_day", table_name="referral_daily_rollups")
    op.drop_table("referral_daily_rollups")
