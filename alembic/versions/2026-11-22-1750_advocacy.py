"""advocacy: natural keys for asks (trigger_key) and advocacy actions (external_id)

Revision ID: 0002_advocacy
Revises: 0001
Create Date: 2026-11-22 17:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_advocacy"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("asks", sa.Column("trigger_key", sa.String(length=128), nullable=True))
    op.create_unique_constraint(
        op.f("uq_asks_advocate_id_trigger_key"), "asks", ["advocate_id", "trigger_key"]
    )
    op.add_column(
        "advocacy_actions", sa.Column("external_id", sa.String(length=128), nullable=True)
    )
    op.create_unique_constraint(
        op.f("uq_advocacy_actions_advocate_id_external_id"),
        "advocacy_actions",
        ["advocate_id", "external_id"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("uq_advocacy_actions_advocate_id_external_id"), "advocacy_actions", type_="unique"
    )
    op.drop_column("advocacy_actions", "external_id")
    op.drop_constraint(op.f("uq_asks_advocate_id_trigger_key"), "asks", type_="unique")
    op.drop_column("asks", "trigger_key")
