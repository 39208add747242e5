"""Native integrations: provider events seen (deduplication), the fetch queue, external ids."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base, enum_check, pk
from vouch.models.enums import IntegrationEventStatus, IntegrationJobStatus, IntegrationProvider


class IntegrationEvent(Base):
    """One provider event (HubSpot eventId, Salesforce notification Id, Stripe event id), kept
    so a redelivery is recognised and answered without being applied twice."""

    __tablename__ = "integration_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        enum_check("provider", IntegrationProvider),
        enum_check("status", IntegrationEventStatus),
    )

    id: Mapped[int] = pk()
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    # Why a failed event was refused, or what an ignored one was (never personal data).
    detail: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IntegrationJob(Base):
    """A durable queue of provider API fetches (e.g. a HubSpot deal and its contacts), worked
    off the request path with ``FOR UPDATE SKIP LOCKED``. At most one pending job per object:
    several events about one deal are answered by one fetch of its current state."""

    __tablename__ = "integration_jobs"
    __table_args__ = (
        enum_check("provider", IntegrationProvider),
        enum_check("status", IntegrationJobStatus),
        Index(
            "uq_integration_jobs_pending_object",
            "provider",
            "kind",
            "object_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_integration_jobs_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = pk()
    provider: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=IntegrationJobStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExternalRef(Base):
    """A provider object known to belong to a referral: a Stripe customer, subscription or
    promotion code. Later events about the object (a renewal invoice, a refund) find the
    referral through it."""

    __tablename__ = "external_refs"
    __table_args__ = (
        UniqueConstraint("provider", "kind", "external_id"),
        enum_check("provider", IntegrationProvider),
        Index("ix_external_refs_referral_id", "referral_id"),
    )

    id: Mapped[int] = pk()
    provider: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
