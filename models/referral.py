"""The attribution side: links, clicks, referrals, their events, decisions and redemptions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base, created_at, currency_check, enum_check, pk, updated_at
from vouch.models.enums import (
    AttributionEvidence,
    AttributionModel,
    ConversionKind,
    LinkStatus,
    ModerationState,
    ReferralSource,
    ReferralStatus,
    ShareEventKind,
)


class ReferralLink(Base):
    __tablename__ = "referral_links"
    __table_args__ = (
        enum_check("status", LinkStatus),
        UniqueConstraint("advocate_id", "program_id", "channel"),
        CheckConstraint("nonce >= 0", name="nonce_nonneg"),
        Index("ix_referral_links_program_id", "program_id"),
    )

    id: Mapped[int] = pk()
    # Random per-link nonce encoded into the code so codes cannot be enumerated.
    nonce: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str | None] = mapped_column(String(32), unique=True)
    advocate_id: Mapped[int] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32), default="direct")
    status: Mapped[str] = mapped_column(String(16), default=LinkStatus.ACTIVE)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()


class Click(Base):
    """One landing hit. Partitioned by month on ``occurred_at`` (migration
    0006_clicks_partitioned; months are created ahead by the ``clicks_partitions`` job), so the
    primary key includes it: look a click up by id with ``click_by_id``, not ``session.get``."""

    __tablename__ = "clicks"
    __table_args__ = (
        Index("ix_clicks_link_occurred", "link_id", "occurred_at"),
        Index("ix_clicks_program_occurred", "program_id", "occurred_at"),
        Index("ix_clicks_ip_hash_occurred", "ip_hash", "occurred_at"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )

    id: Mapped[int] = pk()
    link_id: Mapped[int] = mapped_column(ForeignKey("referral_links.id", ondelete="CASCADE"))
    # Denormalised so reports and a future distribution key need no join.
    program_id: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    channel: Mapped[str | None] = mapped_column(String(32))
    utm: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default="{}")
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    bot_reason: Mapped[str | None] = mapped_column(String(64))
    visitor_id: Mapped[str | None] = mapped_column(String(64))
    referrer_host: Mapped[str | None] = mapped_column(String(253))


class ClickMonthlyTotal(Base):
    """What is kept of a month of clicks after retention dropped its partition
    (``VOUCH_CLICK_RETENTION_MONTHS``): counts per link and share channel, no personal data.
    Every click count (funnel, link and advocate counters, share page) adds these; a month's
    clicks are then placed at the month's first instant (docs/REPORTS.md)."""

    __tablename__ = "click_monthly_totals"
    __table_args__ = (Index("ix_click_monthly_totals_program_month", "program_id", "month"),)

    link_id: Mapped[int] = mapped_column(
        ForeignKey("referral_links.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)  # "" for none
    program_id: Mapped[int] = mapped_column(BigInteger)
    human: Mapped[int] = mapped_column(BigInteger)
    bots: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ClickBatch(Base):
    """A batch of buffered clicks that was written, recorded in the batch's own transaction:
    a batch retried after its COMMIT's acknowledgment was lost is recognised and not written
    twice (``jobs.click_buffer.ClickBuffer``). Old rows are pruned: a retry comes from the
    same process, within its lifetime."""

    __tablename__ = "click_batches"
    __table_args__ = (Index("ix_click_batches_written_at", "written_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    clicks: Mapped[int] = mapped_column(Integer)
    written_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        enum_check("status", ReferralStatus),
        enum_check("moderation", ModerationState),
        enum_check("source", ReferralSource),
        # One referral per referred person per program.
        UniqueConstraint("program_id", "person_key"),
        Index("ix_referrals_link_status", "link_id", "status"),
        Index("ix_referrals_advocate_created", "advocate_id", "created_at"),
        Index("ix_referrals_program_created", "program_id", "created_at"),
        # The claim's fraud screen: recent referrals per link and per hashed IP.
        Index("ix_referrals_link_created", "link_id", "created_at"),
        Index(
            "ix_referrals_ip_created",
            "ip_hash",
            "created_at",
            postgresql_where=text("ip_hash IS NOT NULL"),
        ),
        Index(
            "ix_referrals_moderation_pending",
            "program_id",
            postgresql_where=text("moderation = 'pending'"),
        ),
    )

    id: Mapped[int] = pk()
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    advocate_id: Mapped[int] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("referral_links.id", ondelete="SET NULL")
    )
    # Deduplication key: normalised email, or "ext:<id>" when only an external id is known.
    # After erasure it is replaced by a keyed hash so the person stays deduplicated.
    person_key: Mapped[str] = mapped_column(String(254))
    email: Mapped[str | None] = mapped_column(String(254))
    name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=ReferralStatus.LEAD)
    source: Mapped[str] = mapped_column(String(16), default=ReferralSource.LANDING)
    flags: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list, server_default="{}")
    moderation: Mapped[str] = mapped_column(String(16), default=ModerationState.CLEAR)
    moderation_reason: Mapped[str | None] = mapped_column(Text)
    consent: Mapped[bool] = mapped_column(Boolean, default=False)
    click_id: Mapped[int | None] = mapped_column(BigInteger)
    # The channel of the touch that won attribution: its click's ``?ch=``, else the link's.
    channel: Mapped[str | None] = mapped_column(String(32))
    visitor_id: Mapped[str | None] = mapped_column(String(64))
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Bumped when the referral's credit moves to another advocate or a fallen-back deal is won
    # again: rewards are earned once per rule per round (the key of ``Reward``).
    reward_round: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class ReferralEvent(Base):
    """One state transition of a referral: the append-only audit trail behind every number."""

    __tablename__ = "referral_events"
    __table_args__ = (Index("ix_referral_events_referral_at", "referral_id", "at"),)

    id: Mapped[int] = pk()
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")


class AttributionDecision(Base):
    """Why a referral is credited to an advocate. Re-attribution adds a row, never edits one."""

    __tablename__ = "attribution_decisions"
    __table_args__ = (
        enum_check("rule", AttributionModel),
        enum_check("evidence", AttributionEvidence),
        Index(
            "uq_attribution_decisions_current",
            "referral_id",
            unique=True,
            postgresql_where=text("is_current"),
        ),
        Index("ix_attribution_decisions_advocate_id", "advocate_id"),  # an advocate's chains
    )

    id: Mapped[int] = pk()
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    advocate_id: Mapped[int] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("referral_links.id", ondelete="SET NULL")
    )
    click_id: Mapped[int | None] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(String(16))
    rules_version: Mapped[int] = mapped_column(Integer)
    window_days: Mapped[int] = mapped_column(Integer)
    evidence: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("attribution_decisions.id"))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OfferRedemption(Base):
    """The referred-side offer: issued once per referral, redeemed once."""

    __tablename__ = "offer_redemptions"
    __table_args__ = (
        CheckConstraint(
            "(redeemed_at IS NULL) = (redeemed_by IS NULL)", name="redeemed_fields_together"
        ),
    )

    id: Mapped[int] = pk()
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), unique=True
    )
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redeemed_by: Mapped[str | None] = mapped_column(String(128))
    order_ref: Mapped[str | None] = mapped_column(String(128))


class Conversion(Base):
    """A signup or purchase reported against a referral by the customer's product."""

    __tablename__ = "conversions"
    __table_args__ = (
        enum_check("kind", ConversionKind),
        currency_check("currency"),
        CheckConstraint("amount_minor >= 0", name="amount_nonneg"),
        UniqueConstraint("referral_id", "kind", "external_ref"),
    )

    id: Mapped[int] = pk()
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    external_ref: Mapped[str] = mapped_column(String(128), default="", server_default="")
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()


class ShareEvent(Base):
    """The advocate's share flow: page opened, link copied, channel chosen, message edited."""

    __tablename__ = "share_events"
    __table_args__ = (
        enum_check("kind", ShareEventKind),
        Index("ix_share_events_advocate_at", "advocate_id", "at"),
    )

    id: Mapped[int] = pk()
    advocate_id: Mapped[int] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("referral_links.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
