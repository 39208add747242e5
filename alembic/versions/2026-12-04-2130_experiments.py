"""holdout experiments and their assignments

Revision ID: 0005_experiments_holdouts
Revises: 0005_ops_scheduled_jobs
Create Date: 2026-12-04 21:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_experiments_holdouts"
down_revision: str | Sequence[str] | None = "0005_ops_scheduled_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("holdout_bps", sa.Integer(), nullable=False),
        sa.Column("withhold_asks", sa.Boolean(), nullable=False),
        sa.Column("withhold_widget_prompt", sa.Boolean(), nullable=False),
        sa.Column("min_detectable_lift_bps", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('running', 'paused', 'ended')", name=op.f("ck_experiments_status_valid")
        ),
        sa.CheckConstraint(
            "holdout_bps BETWEEN 100 AND 5000", name=op.f("ck_experiments_holdout_range")
        ),
        sa.CheckConstraint(
            "min_detectable_lift_bps BETWEEN 100 AND 100000", name=op.f("ck_experiments_mde_range")
        ),
        sa.CheckConstraint(
            "withhold_asks OR withhold_widget_prompt",
            name=op.f("ck_experiments_withholds_something"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_experiments_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
    )
    op.create_index(
        "uq_experiments_program_open",
        "experiments",
        ["program_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'ended'"),
    )
    op.create_table(
        "experiment_assignments",
        sa.Column("experiment_id", sa.BigInteger(), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("stratum", sa.SmallInteger(), nullable=False),
        sa.Column("hash_key", sa.String(length=16), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "arm IN ('treatment', 'holdout')", name=op.f("ck_experiment_assignments_arm_valid")
        ),
        sa.CheckConstraint(
            "stratum BETWEEN 0 AND 3", name=op.f("ck_experiment_assignments_stratum_range")
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_assignments_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_experiment_assignments_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "experiment_id", "advocate_id", name=op.f("pk_experiment_assignments")
        ),
    )
    op.create_index(
        "ix_experiment_assignments_advocate_id", "experiment_assignments", ["advocate_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_experiment_assignments_advocate_id", table_name="experiment_assignments")
    op.drop_table("experiment_assignments")
    op.drop_index("uq_experiments_program_open", table_name="experiments")
    op.drop_table("experiments")
