"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 17:41:27.998555+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "advocates",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("email_normalized", sa.String(length=254), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("account_id", sa.String(length=128), nullable=True),
        sa.Column("account_name", sa.String(length=200), nullable=True),
        sa.Column("account_domain", sa.String(length=253), nullable=True),
        sa.Column("persona", sa.String(length=64), nullable=True),
        sa.Column("segment", sa.String(length=64), nullable=True),
        sa.Column("is_icp", sa.Boolean(), nullable=False),
        sa.Column("consent_referral", sa.Boolean(), nullable=False),
        sa.Column("consent_marketing", sa.Boolean(), nullable=False),
        sa.Column("opted_in_extra_asks", sa.Boolean(), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("score >= 0", name=op.f("ck_advocates_score_nonneg")),
        sa.CheckConstraint(
            "tier IS NULL OR tier BETWEEN 1 AND 3", name=op.f("ck_advocates_tier_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advocates")),
        sa.UniqueConstraint("external_id", name=op.f("uq_advocates_external_id")),
    )
    op.create_index("ix_advocates_account_id", "advocates", ["account_id"], unique=False)
    op.create_index(
        "ix_advocates_email_normalized", "advocates", ["email_normalized"], unique=False
    )
    op.create_index("ix_advocates_tier_score", "advocates", ["tier", "score"], unique=False)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(length=16)), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "scopes <@ ARRAY['read','write','admin']::varchar[] AND cardinality(scopes) > 0",
            name=op.f("ck_api_keys_scopes_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "response", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("scope", "key", name=op.f("uq_idempotency_keys_scope_key")),
    )
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    op.create_index("ix_outbox_events_created_at", "outbox_events", ["created_at"], unique=False)
    op.create_table(
        "programs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("attribution_window_days", sa.Integer(), nullable=False),
        sa.Column("attribution_model", sa.String(length=16), nullable=False),
        sa.Column("require_tracking_consent", sa.Boolean(), nullable=False),
        sa.Column("frequency_cap_days", sa.Integer(), nullable=False),
        sa.Column("frequency_cap_count", sa.Integer(), nullable=False),
        sa.Column("tier1_cap_count", sa.Integer(), nullable=False),
        sa.Column("offer_kind", sa.String(length=32), nullable=False),
        sa.Column("offer_value", sa.BigInteger(), nullable=False),
        sa.Column("offer_title", sa.String(length=200), nullable=False),
        sa.Column("offer_terms", sa.Text(), server_default="", nullable=False),
        sa.Column("offer_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redemption_ttl_days", sa.Integer(), nullable=False),
        sa.Column(
            "settings", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "attribution_model IN ('first_touch', 'last_touch')",
            name=op.f("ck_programs_attribution_model_valid"),
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_programs_currency_iso4217")),
        sa.CheckConstraint(
            "offer_kind <> 'percent_off' OR offer_value BETWEEN 1 AND 100",
            name=op.f("ck_programs_offer_percent"),
        ),
        sa.CheckConstraint(
            "offer_kind IN ('percent_off', 'amount_off', 'trial_extension_days', 'credit', 'custom')",
            name=op.f("ck_programs_offer_kind_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'active', 'paused', 'archived')",
            name=op.f("ck_programs_status_valid"),
        ),
        sa.CheckConstraint(
            "attribution_window_days BETWEEN 1 AND 365", name=op.f("ck_programs_window_range")
        ),
        sa.CheckConstraint(
            "frequency_cap_count BETWEEN 1 AND 10", name=op.f("ck_programs_cap_count_range")
        ),
        sa.CheckConstraint(
            "frequency_cap_days BETWEEN 1 AND 365", name=op.f("ck_programs_cap_days_range")
        ),
        sa.CheckConstraint("offer_value >= 0", name=op.f("ck_programs_offer_value_nonneg")),
        sa.CheckConstraint("rules_version >= 1", name=op.f("ck_programs_rules_version_positive")),
        sa.CheckConstraint(
            "tier1_cap_count BETWEEN 1 AND 10", name=op.f("ck_programs_tier1_cap_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programs")),
        sa.UniqueConstraint("slug", name=op.f("uq_programs_slug")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column(
            "event_types",
            postgresql.ARRAY(sa.String(length=64)),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "advocate_badges",
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("badge", sa.String(length=64), nullable=False),
        sa.Column(
            "awarded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_advocate_badges_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("advocate_id", "badge", name=op.f("pk_advocate_badges")),
    )
    op.create_table(
        "advocate_scores",
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=True),
        sa.Column("contributions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "tier IS NULL OR tier BETWEEN 1 AND 3", name=op.f("ck_advocate_scores_tier_range")
        ),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_advocate_scores_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_advocate_scores_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("advocate_id", "program_id", name=op.f("pk_advocate_scores")),
    )
    op.create_index(
        "ix_advocate_scores_program_score", "advocate_scores", ["program_id", "score"], unique=False
    )
    op.create_table(
        "points_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("points <> 0", name=op.f("ck_points_entries_points_nonzero")),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_points_entries_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_points_entries_program_id_programs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_entries")),
        sa.UniqueConstraint(
            "advocate_id", "reason", "ref", name=op.f("uq_points_entries_advocate_id_reason_ref")
        ),
    )
    op.create_index(
        "ix_points_entries_program_at", "points_entries", ["program_id", "at"], unique=False
    )
    op.create_table(
        "referral_links",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=True),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'revoked')", name=op.f("ck_referral_links_status_valid")
        ),
        sa.CheckConstraint("nonce >= 0", name=op.f("ck_referral_links_nonce_nonneg")),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_referral_links_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_referral_links_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_links")),
        sa.UniqueConstraint(
            "advocate_id",
            "program_id",
            "channel",
            name=op.f("uq_referral_links_advocate_id_program_id_channel"),
        ),
        sa.UniqueConstraint("code", name=op.f("uq_referral_links_code")),
    )
    op.create_index("ix_referral_links_program_id", "referral_links", ["program_id"], unique=False)
    op.create_table(
        "reward_rules",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("side", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("calc", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("percent_bps", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("from_nth_referral", sa.Integer(), nullable=False),
        sa.Column("cap_count", sa.Integer(), nullable=True),
        sa.Column("cap_period_days", sa.Integer(), nullable=False),
        sa.Column("clawback_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "calc <> 'percent' OR percent_bps > 0", name=op.f("ck_reward_rules_percent_needs_bps")
        ),
        sa.CheckConstraint("calc IN ('fixed', 'percent')", name=op.f("ck_reward_rules_calc_valid")),
        sa.CheckConstraint(
            "currency ~ '^[A-Z]{3}$'", name=op.f("ck_reward_rules_currency_iso4217")
        ),
        sa.CheckConstraint(
            "kind IN ('credit', 'discount_code', 'cash', 'gift_card', 'points', 'donation', 'status')",
            name=op.f("ck_reward_rules_kind_valid"),
        ),
        sa.CheckConstraint(
            "side IN ('referrer', 'referred')", name=op.f("ck_reward_rules_side_valid")
        ),
        sa.CheckConstraint(
            "trigger IN ('signup', 'qualified', 'won', 'revenue')",
            name=op.f("ck_reward_rules_trigger_valid"),
        ),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_reward_rules_amount_nonneg")),
        sa.CheckConstraint(
            "cap_count IS NULL OR (cap_count >= 1 AND cap_period_days >= 1)",
            name=op.f("ck_reward_rules_cap_valid"),
        ),
        sa.CheckConstraint("clawback_days >= 0", name=op.f("ck_reward_rules_clawback_nonneg")),
        sa.CheckConstraint(
            "from_nth_referral >= 1", name=op.f("ck_reward_rules_from_nth_positive")
        ),
        sa.CheckConstraint(
            "percent_bps BETWEEN 0 AND 10000", name=op.f("ck_reward_rules_percent_range")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_reward_rules_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_rules")),
        sa.UniqueConstraint("program_id", "name", name=op.f("uq_reward_rules_program_id_name")),
    )
    op.create_table(
        "signals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column(
            "data", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('nps', 'csat', 'review_rating', 'usage_milestone', 'usage_depth', 'first_value', 'kpi_milestone', 'renewal', 'renewal_negotiation', 'expansion', 'purchase', 'support_resolved', 'escalation_opened', 'escalation_closed', 'organic_mention', 'referral_made', 'qbr_referral_intent', 'sentiment')",
            name=op.f("ck_signals_kind_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_signals_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
        sa.UniqueConstraint(
            "advocate_id",
            "source",
            "external_id",
            name=op.f("uq_signals_advocate_id_source_external_id"),
        ),
    )
    op.create_index(
        "ix_signals_advocate_occurred", "signals", ["advocate_id", "occurred_at"], unique=False
    )
    op.create_table(
        "tier_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=True),
        sa.Column("from_tier", sa.SmallInteger(), nullable=True),
        sa.Column("to_tier", sa.SmallInteger(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_tier_events_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_tier_events_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_events")),
    )
    op.create_index(
        "ix_tier_events_advocate_at", "tier_events", ["advocate_id", "at"], unique=False
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status_code", sa.SmallInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')",
            name=op.f("ck_webhook_deliveries_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outbox_events.id"],
            name=op.f("fk_webhook_deliveries_event_id_outbox_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "event_id", "endpoint_id", name=op.f("uq_webhook_deliveries_event_id_endpoint_id")
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "clicks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column(
            "utm", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("is_bot", sa.Boolean(), nullable=False),
        sa.Column("bot_reason", sa.String(length=64), nullable=True),
        sa.Column("visitor_id", sa.String(length=64), nullable=True),
        sa.Column("referrer_host", sa.String(length=253), nullable=True),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["referral_links.id"],
            name=op.f("fk_clicks_link_id_referral_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clicks")),
    )
    op.create_index(
        "ix_clicks_ip_hash_occurred", "clicks", ["ip_hash", "occurred_at"], unique=False
    )
    op.create_index("ix_clicks_link_occurred", "clicks", ["link_id", "occurred_at"], unique=False)
    op.create_index(
        "ix_clicks_program_occurred", "clicks", ["program_id", "occurred_at"], unique=False
    )
    op.create_table(
        "referrals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=True),
        sa.Column("person_key", sa.String(length=254), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column(
            "flags", postgresql.ARRAY(sa.String(length=32)), server_default="{}", nullable=False
        ),
        sa.Column("moderation", sa.String(length=16), nullable=False),
        sa.Column("moderation_reason", sa.Text(), nullable=True),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("click_id", sa.BigInteger(), nullable=True),
        sa.Column("visitor_id", sa.String(length=64), nullable=True),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "moderation IN ('clear', 'pending', 'approved', 'rejected')",
            name=op.f("ck_referrals_moderation_valid"),
        ),
        sa.CheckConstraint(
            "source IN ('landing', 'code_entry', 'api', 'import', 'crm')",
            name=op.f("ck_referrals_source_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('lead', 'qualified', 'opportunity', 'won', 'lost', 'churned', 'refunded', 'rejected')",
            name=op.f("ck_referrals_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_referrals_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["referral_links.id"],
            name=op.f("fk_referrals_link_id_referral_links"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_referrals_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint(
            "program_id", "person_key", name=op.f("uq_referrals_program_id_person_key")
        ),
    )
    op.create_index(
        "ix_referrals_advocate_created", "referrals", ["advocate_id", "created_at"], unique=False
    )
    op.create_index("ix_referrals_link_status", "referrals", ["link_id", "status"], unique=False)
    op.create_index(
        "ix_referrals_moderation_pending",
        "referrals",
        ["program_id"],
        unique=False,
        postgresql_where=sa.text("moderation = 'pending'"),
    )
    op.create_index(
        "ix_referrals_program_created", "referrals", ["program_id", "created_at"], unique=False
    )
    op.create_table(
        "share_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('page_opened', 'link_copied', 'channel_chosen', 'message_edited', 'qr_shown')",
            name=op.f("ck_share_events_kind_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_share_events_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["referral_links.id"],
            name=op.f("fk_share_events_link_id_referral_links"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_share_events_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_events")),
    )
    op.create_index(
        "ix_share_events_advocate_at", "share_events", ["advocate_id", "at"], unique=False
    )
    op.create_table(
        "attribution_decisions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("referral_id", sa.BigInteger(), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=True),
        sa.Column("click_id", sa.BigInteger(), nullable=True),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("supersedes_id", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "evidence IN ('click', 'code_entry', 'form', 'api', 'manual')",
            name=op.f("ck_attribution_decisions_evidence_valid"),
        ),
        sa.CheckConstraint(
            "rule IN ('first_touch', 'last_touch')",
            name=op.f("ck_attribution_decisions_rule_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_attribution_decisions_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["referral_links.id"],
            name=op.f("fk_attribution_decisions_link_id_referral_links"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_attribution_decisions_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"],
            ["attribution_decisions.id"],
            name=op.f("fk_attribution_decisions_supersedes_id_attribution_decisions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attribution_decisions")),
    )
    op.create_index(
        "uq_attribution_decisions_current",
        "attribution_decisions",
        ["referral_id"],
        unique=True,
        postgresql_where=sa.text("is_current"),
    )
    op.create_table(
        "conversions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("referral_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_ref", sa.String(length=128), server_default="", nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_conversions_currency_iso4217")),
        sa.CheckConstraint(
            "kind IN ('signup', 'purchase')", name=op.f("ck_conversions_kind_valid")
        ),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_conversions_amount_nonneg")),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_conversions_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint(
            "referral_id",
            "kind",
            "external_ref",
            name=op.f("uq_conversions_referral_id_kind_external_ref"),
        ),
    )
    op.create_table(
        "offer_redemptions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("referral_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_by", sa.String(length=128), nullable=True),
        sa.Column("order_ref", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "(redeemed_at IS NULL) = (redeemed_by IS NULL)",
            name=op.f("ck_offer_redemptions_redeemed_fields_together"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_offer_redemptions_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_offer_redemptions_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_redemptions")),
        sa.UniqueConstraint("code", name=op.f("uq_offer_redemptions_code")),
        sa.UniqueConstraint("referral_id", name=op.f("uq_offer_redemptions_referral_id")),
    )
    op.create_table(
        "opportunities",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("crm_id", sa.String(length=128), nullable=False),
        sa.Column("referral_id", sa.BigInteger(), nullable=True),
        sa.Column("program_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "currency ~ '^[A-Z]{3}$'", name=op.f("ck_opportunities_currency_iso4217")
        ),
        sa.CheckConstraint(
            "kind IN ('new_business', 'expansion', 'renewal')",
            name=op.f("ck_opportunities_kind_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'won', 'lost')", name=op.f("ck_opportunities_status_valid")
        ),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_opportunities_amount_nonneg")),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_opportunities_program_id_programs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_opportunities_referral_id_referrals"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunities")),
        sa.UniqueConstraint("crm_id", name=op.f("uq_opportunities_crm_id")),
    )
    op.create_index(
        "ix_opportunities_program_status", "opportunities", ["program_id", "status"], unique=False
    )
    op.create_index("ix_opportunities_referral_id", "opportunities", ["referral_id"], unique=False)
    op.create_table(
        "referral_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("referral_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column(
            "detail", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_referral_events_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_events")),
    )
    op.create_index(
        "ix_referral_events_referral_at", "referral_events", ["referral_id", "at"], unique=False
    )
    op.create_table(
        "rewards",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("referral_id", sa.BigInteger(), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=True),
        sa.Column("side", sa.String(length=16), nullable=False),
        sa.Column("trigger_ref", sa.String(length=64), server_default="", nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("clawback_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_rewards_currency_iso4217")),
        sa.CheckConstraint(
            "kind IN ('credit', 'discount_code', 'cash', 'gift_card', 'points', 'donation', 'status')",
            name=op.f("ck_rewards_kind_valid"),
        ),
        sa.CheckConstraint("side IN ('referrer', 'referred')", name=op.f("ck_rewards_side_valid")),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'fulfilled', 'voided')",
            name=op.f("ck_rewards_state_valid"),
        ),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_rewards_amount_nonneg")),
        sa.CheckConstraint("points >= 0", name=op.f("ck_rewards_points_nonneg")),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_rewards_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_rewards_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_rewards_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["reward_rules.id"],
            name=op.f("fk_rewards_rule_id_reward_rules"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rewards")),
        sa.UniqueConstraint(
            "rule_id",
            "referral_id",
            "trigger_ref",
            name=op.f("uq_rewards_rule_id_referral_id_trigger_ref"),
        ),
    )
    op.create_index("ix_rewards_advocate_state", "rewards", ["advocate_id", "state"], unique=False)
    op.create_index("ix_rewards_program_state", "rewards", ["program_id", "state"], unique=False)
    op.create_table(
        "asks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=True),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("moment", sa.String(length=32), nullable=False),
        sa.Column("team", sa.String(length=24), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("automated", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("declined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        sa.Column("fallback_of_id", sa.BigInteger(), nullable=True),
        sa.Column("opportunity_id", sa.BigInteger(), nullable=True),
        sa.Column("reserved_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'accepted', 'published', 'declined', 'expired', 'cancelled')",
            name=op.f("ck_asks_status_valid"),
        ),
        sa.CheckConstraint(
            "team IN ('marketing', 'sales', 'customer_success')", name=op.f("ck_asks_team_valid")
        ),
        sa.CheckConstraint(
            "type IN ('review', 'testimonial', 'case_study', 'anonymous_quote', 'reference_call', 'referral_invite', 'social_share', 'community_invite', 'survey')",
            name=op.f("ck_asks_type_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_asks_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["fallback_of_id"],
            ["asks.id"],
            name=op.f("fk_asks_fallback_of_id_asks"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunities.id"],
            name=op.f("fk_asks_opportunity_id_opportunities"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_asks_program_id_programs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asks")),
    )
    op.create_index("ix_asks_advocate_sent", "asks", ["advocate_id", "sent_at"], unique=False)
    op.create_index("ix_asks_advocate_status", "asks", ["advocate_id", "status"], unique=False)
    op.create_table(
        "opportunity_contacts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("opportunity_id", sa.BigInteger(), nullable=False),
        sa.Column("person_key", sa.String(length=254), nullable=False),
        sa.Column("referral_id", sa.BigInteger(), nullable=True),
        sa.Column("role", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunities.id"],
            name=op.f("fk_opportunity_contacts_opportunity_id_opportunities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_opportunity_contacts_referral_id_referrals"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunity_contacts")),
        sa.UniqueConstraint(
            "opportunity_id",
            "person_key",
            name=op.f("uq_opportunity_contacts_opportunity_id_person_key"),
        ),
    )
    op.create_table(
        "opportunity_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("opportunity_id", sa.BigInteger(), nullable=False),
        sa.Column("from_stage", sa.String(length=64), nullable=True),
        sa.Column("to_stage", sa.String(length=64), nullable=False),
        sa.Column("from_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("to_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunities.id"],
            name=op.f("fk_opportunity_events_opportunity_id_opportunities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunity_events")),
    )
    op.create_index(
        "ix_opportunity_events_opportunity_at",
        "opportunity_events",
        ["opportunity_id", "at"],
        unique=False,
    )
    op.create_table(
        "revenue_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("opportunity_id", sa.BigInteger(), nullable=True),
        sa.Column("referral_id", sa.BigInteger(), nullable=True),
        sa.Column("program_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column(
            "data", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "currency ~ '^[A-Z]{3}$'", name=op.f("ck_revenue_events_currency_iso4217")
        ),
        sa.CheckConstraint(
            "kind IN ('one_time', 'recurring', 'refund')", name=op.f("ck_revenue_events_kind_valid")
        ),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_revenue_events_amount_nonneg")),
        sa.CheckConstraint(
            "opportunity_id IS NOT NULL OR referral_id IS NOT NULL",
            name=op.f("ck_revenue_events_linked_to_something"),
        ),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunities.id"],
            name=op.f("fk_revenue_events_opportunity_id_opportunities"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_revenue_events_program_id_programs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_revenue_events_referral_id_referrals"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revenue_events")),
        sa.UniqueConstraint("external_id", name=op.f("uq_revenue_events_external_id")),
    )
    op.create_index(
        "ix_revenue_events_opportunity_id", "revenue_events", ["opportunity_id"], unique=False
    )
    op.create_index(
        "ix_revenue_events_program_occurred",
        "revenue_events",
        ["program_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_revenue_events_referral_id", "revenue_events", ["referral_id"], unique=False
    )
    op.create_table(
        "reward_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("reward_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("fulfilment_ref", sa.String(length=200), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'fulfilled', 'voided')",
            name=op.f("ck_reward_entries_state_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"],
            ["rewards.id"],
            name=op.f("fk_reward_entries_reward_id_rewards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_entries")),
        sa.UniqueConstraint("reward_id", "state", name=op.f("uq_reward_entries_reward_id_state")),
    )
    op.create_table(
        "advocacy_actions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("advocate_id", sa.BigInteger(), nullable=False),
        sa.Column("ask_id", sa.BigInteger(), nullable=True),
        sa.Column("program_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column(
            "data", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('review', 'testimonial', 'case_study', 'quote', 'reference', 'talk', 'referral', 'social_share', 'community', 'survey')",
            name=op.f("ck_advocacy_actions_kind_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["advocate_id"],
            ["advocates.id"],
            name=op.f("fk_advocacy_actions_advocate_id_advocates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ask_id"],
            ["asks.id"],
            name=op.f("fk_advocacy_actions_ask_id_asks"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_advocacy_actions_program_id_programs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advocacy_actions")),
    )
    op.create_index(
        "ix_advocacy_actions_advocate_at",
        "advocacy_actions",
        ["advocate_id", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "action_opportunities",
        sa.Column("action_id", sa.BigInteger(), nullable=False),
        sa.Column("opportunity_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["advocacy_actions.id"],
            name=op.f("fk_action_opportunities_action_id_advocacy_actions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunities.id"],
            name=op.f("fk_action_opportunities_opportunity_id_opportunities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "action_id", "opportunity_id", name=op.f("pk_action_opportunities")
        ),
    )


def downgrade() -> None:
    op.drop_table("action_opportunities")
    op.drop_index("ix_advocacy_actions_advocate_at", table_name="advocacy_actions")
    op.drop_table("advocacy_actions")
    op.drop_table("reward_entries")
    op.drop_index("ix_revenue_events_referral_id", table_name="revenue_events")
    op.drop_index("ix_revenue_events_program_occurred", table_name="revenue_events")
    op.drop_index("ix_revenue_events_opportunity_id", table_name="revenue_events")
    op.drop_table("revenue_events")
    op.drop_index("ix_opportunity_events_opportunity_at", table_name="opportunity_events")
    op.drop_table("opportunity_events")
    op.drop_table("opportunity_contacts")
    op.drop_index("ix_asks_advocate_status", table_name="asks")
    op.drop_index("ix_asks_advocate_sent", table_name="asks")
    op.drop_table("asks")
    op.drop_index("ix_rewards_program_state", table_name="rewards")
    op.drop_index("ix_rewards_advocate_state", table_name="rewards")
    op.drop_table("rewards")
    op.drop_index("ix_referral_events_referral_at", table_name="referral_events")
    op.drop_table("referral_events")
    op.drop_index("ix_opportunities_referral_id", table_name="opportunities")
    op.drop_index("ix_opportunities_program_status", table_name="opportunities")
    op.drop_table("opportunities")
    op.drop_table("offer_redemptions")
    op.drop_table("conversions")
    op.drop_index(
        "uq_attribution_decisions_current",
        table_name="attribution_decisions",
        postgresql_where=sa.text("is_current"),
    )
    op.drop_table("attribution_decisions")
    op.drop_index("ix_share_events_advocate_at", table_name="share_events")
    op.drop_table("share_events")
    op.drop_index("ix_referrals_program_created", table_name="referrals")
    op.drop_index(
        "ix_referrals_moderation_pending",
        table_name="referrals",
        postgresql_where=sa.text("moderation = 'pending'"),
    )
    op.drop_index("ix_referrals_link_status", table_name="referrals")
    op.drop_index("ix_referrals_advocate_created", table_name="referrals")
    op.drop_table("referrals")
    op.drop_index("ix_clicks_program_occurred", table_name="clicks")
    op.drop_index("ix_clicks_link_occurred", table_name="clicks")
    op.drop_index("ix_clicks_ip_hash_occurred", table_name="clicks")
    op.drop_table("clicks")
    op.drop_index(
        "ix_webhook_deliveries_due",
        table_name="webhook_deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_tier_events_advocate_at", table_name="tier_events")
    op.drop_table("tier_events")
    op.drop_index("ix_signals_advocate_occurred", table_name="signals")
    op.drop_table("signals")
    op.drop_table("reward_rules")
    op.drop_index("ix_referral_links_program_id", table_name="referral_links")
    op.drop_table("referral_links")
    op.drop_index("ix_points_entries_program_at", table_name="points_entries")
    op.drop_table("points_entries")
    op.drop_index("ix_advocate_scores_program_score", table_name="advocate_scores")
    op.drop_table("advocate_scores")
    op.drop_table("advocate_badges")
    op.drop_table("webhook_endpoints")
    op.drop_table("programs")
    op.drop_index("ix_outbox_events_created_at", table_name="outbox_events")
    op.drop_table("outbox_events")
    op.drop_table("idempotency_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_advocates_tier_score", table_name="advocates")
    op.drop_index("ix_advocates_email_normalized", table_name="advocates")
    op.drop_index("ix_advocates_account_id", table_name="advocates")
    op.drop_table("advocates")
