"""Programs and their reward rules (the rules two-sided rewards are computed from)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base, created_at, currency_check, enum_check, pk, updated_at
from vouch.models.enums import (
    AttributionModel,
    OfferKind,
    ProgramStatus,
    RewardCalc,
    RewardKind,
    RewardSide,
    RewardTrigger,
)


class Program(Base):
    __tablename__ = "programs"
    __table_args__ = (
        enum_check("status", ProgramStatus),
        enum_check("attribution_model", AttributionModel),
        enum_check("offer_kind", OfferKind),
        currency_check("currency"),
        CheckConstraint("attribution_window_days BETWEEN 1 AND 365", name="window_range"),
        CheckConstraint("frequency_cap_days BETWEEN 1 AND 365", name="cap_days_range"),
        CheckConstraint("frequency_cap_count BETWEEN 1 AND 10", name="cap_count_range"),
        CheckConstraint("tier1_cap_count BETWEEN 1 AND 10", name="tier1_cap_range"),
        CheckConstraint("offer_value >= 0", name="offer_value_nonneg"),
        CheckConstraint(
            "offer_kind <> 'percent_off' OR offer_value BETWEEN 1 AND 100", name="offer_percent"
        ),
        CheckConstraint("rules_version >= 1", name="rules_version_positive"),
    )

    id: Mapped[int] = pk()
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    status: Mapped[str] = mapped_column(String(16), default=ProgramStatus.ACTIVE)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    attribution_window_days: Mapped[int] = mapped_column(Integer, default=30)
    attribution_model: Mapped[str] = mapped_column(String(16), default=AttributionModel.LAST_TOUCH)
    require_tracking_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    frequency_cap_days: Mapped[int] = mapped_column(Integer, default=30)
    frequency_cap_count: Mapped[int] = mapped_column(Integer, default=1)
    tier1_cap_count: Mapped[int] = mapped_column(Integer, default=2)
    # The referred-side offer.
    offer_kind: Mapped[str] = mapped_column(String(32), default=OfferKind.PERCENT_OFF)
    offer_value: Mapped[int] = mapped_column(BigInteger, default=15)
    offer_title: Mapped[str] = mapped_column(String(200), default="15% off your first order")
    offer_terms: Mapped[str] = mapped_column(Text, default="", server_default="")
    offer_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redemption_ttl_days: Mapped[int] = mapped_column(Integer, default=90)
    # Settings that evolve with the product: scoring weights, tier rule, points, fraud knobs.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # Bumped whenever attribution or reward rules change; decisions record the version used.
    rules_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class RewardRule(Base):
    __tablename__ = "reward_rules"
    __table_args__ = (
        enum_check("side", RewardSide),
        enum_check("trigger", RewardTrigger),
        enum_check("calc", RewardCalc),
        enum_check("kind", RewardKind),
        currency_check("currency"),
        CheckConstraint("amount_minor >= 0", name="amount_nonneg"),
        CheckConstraint("percent_bps BETWEEN 0 AND 10000", name="percent_range"),
        CheckConstraint("calc <> 'percent' OR percent_bps > 0", name="percent_needs_bps"),
        CheckConstraint("from_nth_referral >= 1", name="from_nth_positive"),
        CheckConstraint(
            "cap_count IS NULL OR (cap_count >= 1 AND cap_period_days >= 1)", name="cap_valid"
        ),
        CheckConstraint("clawback_days >= 0", name="clawback_nonneg"),
        CheckConstraint("holding_days BETWEEN 0 AND 365", name="holding_range"),
        UniqueConstraint("program_id", "name"),
    )

    id: Mapped[int] = pk()
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    side: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    calc: Mapped[str] = mapped_column(String(16), default=RewardCalc.FIXED)
    kind: Mapped[str] = mapped_column(String(16), default=RewardKind.CREDIT)
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    percent_bps: Mapped[int] = mapped_column(Integer, default=0)
    points: Mapped[int] = mapped_column(Integer, default=0)
    # Tiered rewards: this rule applies from the advocate's Nth successful referral on.
    from_nth_referral: Mapped[int] = mapped_column(Integer, default=1)
    cap_count: Mapped[int | None] = mapped_column(Integer)
    cap_period_days: Mapped[int] = mapped_column(Integer, default=365)
    clawback_days: Mapped[int] = mapped_column(Integer, default=60)
    # Holding period: rewards of this rule cannot be approved until it ends.
    holding_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = created_at()
