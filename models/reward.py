"""Rewards are a ledger: a reward row says what was earned, entries say what happened to it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base, created_at, currency_check, enum_check, pk
from vouch.models.enums import RewardKind, RewardSide, RewardState


class Reward(Base):
    __tablename__ = "rewards"
    __table_args__ = (
        enum_check("side", RewardSide),
        enum_check("kind", RewardKind),
        enum_check("state", RewardState),
        currency_check("currency"),
        CheckConstraint("amount_minor >= 0", name="amount_nonneg"),
        CheckConstraint("points >= 0", name="points_nonneg"),
        # Exactly one reward per rule per referral (per revenue event for revenue-share rules)
        # in each reward round of the referral (see Referral.reward_round).
        UniqueConstraint("rule_id", "referral_id", "trigger_ref", "round"),
        Index("ix_rewards_advocate_state", "advocate_id", "state"),
        # a page's or a referral's rewards (the unique constraint above leads with rule_id)
        Index("ix_rewards_referral_id", "referral_id"),
        Index("ix_rewards_program_state", "program_id", "state"),
        # the release backlog: pending rewards whose holding period has ended
        Index(
            "ix_rewards_held_pending",
            "held_until",
            postgresql_where=text("state = 'pending' AND held_until IS NOT NULL"),
        ),
    )

    id: Mapped[int] = pk()
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("reward_rules.id", ondelete="RESTRICT"))
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    # The referrer for referrer-side rewards; NULL for the referred friend's reward.
    advocate_id: Mapped[int | None] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    side: Mapped[str] = mapped_column(String(16))
    trigger_ref: Mapped[str] = mapped_column(String(64), default="", server_default="")
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    points: Mapped[int] = mapped_column(Integer, default=0)
    # Projection of the latest ledger entry, written in the same transaction as the entry.
    state: Mapped[str] = mapped_column(String(16), default=RewardState.PENDING)
    clawback_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The referral's reward round this reward was earned in (part of the exactly-once key).
    round: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # End of the rule's holding period: not approvable before; NULL when the rule holds nothing.
    held_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when a fulfilled reward is held for review (its referral was re-attributed).
    review_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()


class RewardEntry(Base):
    """One immutable step of a reward's life. Each state is reached at most once."""

    __tablename__ = "reward_entries"
    __table_args__ = (
        enum_check("state", RewardState),
        UniqueConstraint("reward_id", "state"),
    )

    id: Mapped[int] = pk()
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    fulfilment_ref: Mapped[str | None] = mapped_column(String(200))
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
