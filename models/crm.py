"""The CRM and billing side: opportunities, their contacts and history, revenue events."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base, created_at, currency_check, enum_check, pk, updated_at
from vouch.models.enums import CrmProvider, OpportunityKind, OpportunityStatus, RevenueKind


class Opportunity(Base):
    __tablename__ = "opportunities"
    __table_args__ = (
        enum_check("kind", OpportunityKind),
        enum_check("status", OpportunityStatus),
        currency_check("currency"),
        CheckConstraint("amount_minor >= 0", name="amount_nonneg"),
        Index("ix_opportunities_referral_id", "referral_id"),
        Index("ix_opportunities_program_status", "program_id", "status"),
        enum_check("provider", CrmProvider),
        # The CRM's id as the CRM gives it; two CRMs may use the same id.
        UniqueConstraint("provider", "crm_id"),
    )

    id: Mapped[int] = pk()
    provider: Mapped[str] = mapped_column(
        String(16), default=CrmProvider.OTHER, server_default=CrmProvider.OTHER.value
    )
    crm_id: Mapped[str] = mapped_column(String(128))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id", ondelete="SET NULL"))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16), default=OpportunityKind.NEW_BUSINESS)
    name: Mapped[str | None] = mapped_column(String(200))
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    stage: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8), default=OpportunityStatus.OPEN)
    close_date: Mapped[date | None] = mapped_column(Date)
    owner: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class OpportunityContact(Base):
    __tablename__ = "opportunity_contacts"
    __table_args__ = (UniqueConstraint("opportunity_id", "person_key"),)

    id: Mapped[int] = pk()
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"))
    person_key: Mapped[str] = mapped_column(String(254))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id", ondelete="SET NULL"))
    role: Mapped[str | None] = mapped_column(String(64))


class OpportunityEvent(Base):
    """Stage and amount history of an opportunity, append-only."""

    __tablename__ = "opportunity_events"
    __table_args__ = (Index("ix_opportunity_events_opportunity_at", "opportunity_id", "at"),)

    id: Mapped[int] = pk()
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    from_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    to_amount_minor: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(64))


class RevenueEvent(Base):
    __tablename__ = "revenue_events"
    __table_args__ = (
        enum_check("kind", RevenueKind),
        currency_check("currency"),
        CheckConstraint("amount_minor >= 0", name="amount_nonneg"),
        CheckConstraint(
            "opportunity_id IS NOT NULL OR referral_id IS NOT NULL", name="linked_to_something"
        ),
        Index("ix_revenue_events_referral_id", "referral_id"),
        Index("ix_revenue_events_opportunity_id", "opportunity_id"),
        Index("ix_revenue_events_program_occurred", "program_id", "occurred_at"),
    )

    id: Mapped[int] = pk()
    # The billing system's id for this charge or refund: the natural idempotency key.
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    opportunity_id: Mapped[int | None] = mapped_column(
        ForeignKey("opportunities.id", ondelete="SET NULL")
    )
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id", ondelete="SET NULL"))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    # Always positive; a refund's direction is its kind.
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = created_at()
