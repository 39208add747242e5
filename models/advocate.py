"""Advocates, their signals, readiness scores and tier history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base, created_at, enum_check, pk, updated_at
from vouch.models.enums import SignalKind


class Advocate(Base):
    __tablename__ = "advocates"
    __table_args__ = (
        CheckConstraint("tier IS NULL OR tier BETWEEN 1 AND 3", name="tier_range"),
        CheckConstraint("score >= 0", name="score_nonneg"),
        Index("ix_advocates_email_normalized", "email_normalized"),
        Index("ix_advocates_account_id", "account_id"),
        Index("ix_advocates_tier_score", "tier", "score"),
    )

    id: Mapped[int] = pk()
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    # Nullable because erasure (GDPR) removes it while the row keeps aggregates consistent.
    email: Mapped[str | None] = mapped_column(String(254))
    email_normalized: Mapped[str | None] = mapped_column(String(254))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    account_id: Mapped[str | None] = mapped_column(String(128))
    account_name: Mapped[str | None] = mapped_column(String(200))
    account_domain: Mapped[str | None] = mapped_column(String(253))
    persona: Mapped[str | None] = mapped_column(String(64))
    segment: Mapped[str | None] = mapped_column(String(64))
    is_icp: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_referral: Mapped[bool] = mapped_column(Boolean, default=True)
    consent_marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_in_extra_asks: Mapped[bool] = mapped_column(Boolean, default=False)
    tier: Mapped[int | None] = mapped_column(SmallInteger)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Signal(Base):
    __tablename__ = "signals"
    __table_args__ = (
        enum_check("kind", SignalKind),
        UniqueConstraint("advocate_id", "source", "external_id"),
        Index("ix_signals_advocate_occurred", "advocate_id", "occurred_at"),
    )

    id: Mapped[int] = pk()
    advocate_id: Mapped[int] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(64), default="api")
    # The sender's id for this fact; re-sending the same signal is a no-op.
    external_id: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = created_at()


class AdvocateScore(Base):
    """The readiness score of one advocate for one program, with its explanation."""

    __tablename__ = "advocate_scores"
    __table_args__ = (
        CheckConstraint("tier IS NULL OR tier BETWEEN 1 AND 3", name="tier_range"),
        Index("ix_advocate_scores_program_score", "program_id", "score"),
    )

    advocate_id: Mapped[int] = mapped_column(
        ForeignKey("advocates.id", ondelete="CASCADE"), primary_key=True
    )
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[float] = mapped_column(Float)
    tier: Mapped[int | None] = mapped_column(SmallInteger)
    contributions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TierEvent(Base):
    __tablename__ = "tier_events"
    __table_args__ = (Index("ix_tier_events_advocate_at", "advocate_id", "at"),)

    id: Mapped[int] = pk()
    advocate_id: Mapped[int] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    from_tier: Mapped[int | None] = mapped_column(SmallInteger)
    to_tier: Mapped[int | None] = mapped_column(SmallInteger)
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[int | None] = mapped_column(BigInteger)
