"""Platform tables: API keys, console sessions, idempotency records, webhook endpoints, outbox
and deliveries."""

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
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base, created_at, enum_check, pk
from vouch.models.enums import DeliveryStatus


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "scopes <@ ARRAY['read','write','admin']::varchar[] AND cardinality(scopes) > 0",
            name="scopes_valid",
        ),
    )

    id: Mapped[int] = pk()
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    created_at: Mapped[datetime] = created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConsoleSession(Base):
    """A signed-in console session, server-side so that logout, idle time and key revocation
    end it. The cookie holds a random token; only its SHA-256 is stored here."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_api_key_id", "api_key_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at()
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(Base):
    """A stored answer to a request that may be retried. Same key + same request = same answer."""

    __tablename__ = "idempotency_keys"
    # A key belongs to one credential (``owner``) and one operation (``scope``): reusing it for
    # another operation is refused, as Stripe does.
    __table_args__ = (UniqueConstraint("owner", "key"),)

    id: Mapped[int] = pk()
    owner: Mapped[str] = mapped_column(String(64), default="", server_default="")
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = created_at()


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = pk()
    url: Mapped[str] = mapped_column(String(2048))
    # Needed in clear to sign outgoing payloads (Standard Webhooks "whsec_" secret).
    secret: Mapped[str] = mapped_column(String(128))
    event_types: Mapped[list[str]] = mapped_column(
        ARRAY(String(64)), default=list, server_default="{}"
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at()


class OutboxEvent(Base):
    """Written in the same transaction as the change it announces."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_created_at", "created_at"),
        # The code-mail worker's queue (attribution.code_mail): small, scanned every pass.
        Index(
            "ix_outbox_events_code_mail_due",
            "id",
            postgresql_where=text(
                "event_type = 'offer.code_resend_requested' AND mailed_at IS NULL"
            ),
        ),
    )

    id: Mapped[int] = pk()
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at()
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Only offer.code_resend_requested events are mailed (when SMTP is configured).
    mailed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    mail_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        enum_check("status", DeliveryStatus),
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_webhook_deliveries_endpoint_id", "endpoint_id"),  # an endpoint's deliveries
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = pk()
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
