"""referral channel: the channel of the touch that won attribution, kept on the referral

Revision ID: 0005_money_b_referral_channel
Revises: 0005_integrations
Create Date: 2026-12-04 21:30:00+00:00

Existing referrals take their recorded click's channel (``?ch=``), else their link's. Run
``vouch rollups rebuild`` once after upgrading so pipeline by channel uses it for old rows too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_money_b_referral_channel"
down_revision: str | Sequence[str] | None = "0005_integrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("referrals", sa.Column("channel", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE referrals r SET channel = COALESCE("
        "(SELECT c.channel FROM clicks c WHERE c.id = r.click_id), "
        "(SELECT l.channel FROM referral_links l WHERE l.id = r.link_id))"
    )


def downgrade() -> None:
    op.drop_column("referrals", "channel")
