"""code mail: offer.code_resend_requested events mailed by a worker when SMTP is configured

Revision ID: 0005_sec_edge_code_mail
Revises: 0005_money_a_rewards
Create Date: 2026-12-04 22:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_sec_edge_code_mail"
down_revision: str | Sequence[str] | None = "0005_money_a_rewards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox_events", sa.Column("mailed_at", sa.DateTime(timezone=True)))
    op.add_column(
        "outbox_events",
        sa.Column("mail_attempts", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_index(
        "ix_outbox_events_code_mail_due",
        "outbox_events",
        ["id"],
        postgresql_where=sa.text(
            "event_type = 'offer.code_resend_requested' AND mailed_at IS NULL"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_events_code_mail_due", table_name="outbox_events")
    op.drop_column("outbox_events", "mail_attempts")
    op.drop_column("outbox_events", "mailed_at")
