"""Asks, advocacy actions, and the gamification ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base, created_at, enum_check, pk
from vouch.models.enums import ActionKind, AskStatus, AskType, Team


class Ask(Base):
    __tablename__ = "asks"
    __table_args__ = (
        enum_check("type", AskType),
        enum_check("status", AskStatus),
        enum_check("team", Team),
        Index("ix_asks_advocate_status", "advocate_id", "status"),
        Index("ix_asks_advocate_sent", "advocate_id", "sent_at"),
        # What earned the ask (a moment's signal, a dormancy stage, a decline): evaluating the
        # same advocate twice queues it once.
        UniqueConstraint("advocate_id", "trigger_key"),
    )

    id: Mapped[int] = pk()
    advocate_id: Mapped[int] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(24))
    moment: Mapped[str] = mapped_column(String(32))
    team: Mapped[str] = mapped_column(String(24), default=Team.MARKETING)
    priority: Mapped[int] = mapped_column(Integer, default=50)
    automated: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default=AskStatus.QUEUED)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    declined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decline_reason: Mapped[str | None] = mapped_column(Text)
    fallback_of_id: Mapped[int | None] = mapped_column(ForeignKey("asks.id", ondelete="SET NULL"))
    # Reference calls: the opportunity it is reserved for and until when.
    opportunity_id: Mapped[int | None] = mapped_column(
        ForeignKey("opportunities.id", ondelete="SET NULL")
    )
    reserved_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(Text)
    trigger_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = created_at()


class AdvocacyAction(Base):
    __tablename__ = "advocacy_actions"
    __table_args__ = (
        enum_check("kind", ActionKind),
        Index("ix_advocacy_actions_advocate_at", "advocate_id", "occurred_at"),
        # The sender's id for this action; recording it again is a no-op.
        UniqueConstraint("advocate_id", "external_id"),
    )

    id: Mapped[int] = pk()
    advocate_id: Mapped[int] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    ask_id: Mapped[int | None] = mapped_column(ForeignKey("asks.id", ondelete="SET NULL"))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(24))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    url: Mapped[str | None] = mapped_column(String(2048))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    external_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = created_at()


class ActionOpportunity(Base):
    """Which opportunities an advocacy action touched: advocacy-influenced revenue."""

    __tablename__ = "action_opportunities"

    action_id: Mapped[int] = mapped_column(
        ForeignKey("advocacy_actions.id", ondelete="CASCADE"), primary_key=True
    )
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("opportunities.id", ondelete="CASCADE"), primary_key=True
    )


class PointsEntry(Base):
    __tablename__ = "points_entries"
    __table_args__ = (
        UniqueConstraint("advocate_id", "reason", "ref"),
        Index("ix_points_entries_program_at", "program_id", "at"),
        CheckConstraint("points <> 0", name="points_nonzero"),
    )

    id: Mapped[int] = pk()
    advocate_id: Mapped[int] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="SET NULL"))
    points: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    # What earned it (an action id, a referral id); makes awarding idempotent.
    ref: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AdvocateBadge(Base):
    __tablename__ = "advocate_badges"

    advocate_id: Mapped[int] = mapped_column(
        ForeignKey("advocates.id", ondelete="CASCADE"), primary_key=True
    )
    badge: Mapped[str] = mapped_column(String(64), primary_key=True)
    awarded_at: Mapped[datetime] = created_at()
