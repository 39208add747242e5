"""Fixed-window rate-limit counters shared by every worker through PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base


class RateLimitHit(Base):
    """How often one bucket (e.g. ``claim:<ip hash>``) was hit in one window.

    One atomic ``INSERT .. ON CONFLICT DO UPDATE`` per hit keeps workers consistent."""

    __tablename__ = "rate_limit_hits"

    bucket: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)
