"""click batches: clicks written exactly once across a lost COMMIT acknowledgment

Revision ID: 0004_click_batches
Revises: 0003_fk_indexes
Create Date: 2026-11-23 02:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_click_batches"
down_revision: str | Sequence[str] | None = "0003_fk_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "click_batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column(
            "written_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_click_batches")),
    )
    op.create_index("ix_click_batches_written_at", "click_batches", ["written_at"])


def downgrade() -> None:
    op.drop_index("ix_click_batches_written_at", table_name="click_batches")
    op.drop_table("click_batches")
