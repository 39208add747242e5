"""integrations: CRM ids stored as given with their provider; provider events, fetch queue and
external ids of the native HubSpot, Salesforce and Stripe integrations

Revision ID: 0005_integrations
Revises: 0005_experiments_holdouts
Create Date: 2026-12-04 21:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_integrations"
down_revision: str | Sequence[str] | None = "0005_experiments_holdouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROVIDERS = "provider IN ('hubspot', 'salesforce', 'stripe')"


def upgrade() -> None:
    op.add_column(
        "opportunities",
        sa.Column("provider", sa.String(length=16), server_default="other", nullable=False),
    )
    # Deals that came through the generic webhook were stored as "hubspot:987"; split them.
    op.execute(
        "UPDATE opportunities SET provider = split_part(crm_id, ':', 1), "
        "crm_id = substr(crm_id, strpos(crm_id, ':') + 1) "
        "WHERE crm_id LIKE 'hubspot:%' OR crm_id LIKE 'salesforce:%'"
    )
    op.drop_constraint("uq_opportunities_crm_id", "opportunities", type_="unique")
    op.create_unique_constraint(
        "uq_opportunities_provider_crm_id", "opportunities", ["provider", "crm_id"]
    )
    op.create_check_constraint(
        "ck_opportunities_provider_valid",
        "opportunities",
        "provider IN ('hubspot', 'salesforce', 'other')",
    )
    op.create_table(
        "integration_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "result",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(PROVIDERS, name=op.f("ck_integration_events_provider_valid")),
        sa.CheckConstraint(
            "status IN ('processed', 'queued', 'ignored', 'failed')",
            name=op.f("ck_integration_events_status_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_events")),
        sa.UniqueConstraint(
            "provider", "event_id", name=op.f("uq_integration_events_provider_event_id")
        ),
    )
    op.create_table(
        "integration_jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(PROVIDERS, name=op.f("ck_integration_jobs_provider_valid")),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'dead')", name=op.f("ck_integration_jobs_status_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_jobs")),
    )
    op.create_index(
        "uq_integration_jobs_pending_object",
        "integration_jobs",
        ["provider", "kind", "object_id"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_integration_jobs_due",
        "integration_jobs",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "external_refs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("referral_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(PROVIDERS, name=op.f("ck_external_refs_provider_valid")),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_external_refs_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_refs")),
        sa.UniqueConstraint(
            "provider",
            "kind",
            "external_id",
            name=op.f("uq_external_refs_provider_kind_external_id"),
        ),
    )
    op.create_index("ix_external_refs_referral_id", "external_refs", ["referral_id"])


def downgrade() -> None:
    op.drop_index("ix_external_refs_referral_id", table_name="external_refs")
    op.drop_table("external_refs")
    op.drop_index("ix_integration_jobs_due", table_name="integration_jobs")
    op.drop_index("uq_integration_jobs_pending_object", table_name="integration_jobs")
    op.drop_table("integration_jobs")
    op.drop_table("integration_events")
    op.drop_constraint("ck_opportunities_provider_valid", "opportunities", type_="check")
    op.drop_constraint("uq_opportunities_provider_crm_id", "opportunities", type_="unique")
    # Back to one id space: HubSpot and Salesforce ids get their prefix again.
    op.execute(
        "UPDATE opportunities SET crm_id = provider || ':' || crm_id "
        "WHERE provider IN ('hubspot', 'salesforce')"
    )
    op.create_unique_constraint("uq_opportunities_crm_id", "opportunities", ["crm_id"])
    op.drop_column("opportunities", "provider")
