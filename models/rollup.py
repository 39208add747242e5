"""Reporting rollups: kept up to date incrementally by the domain, rebuildable from raw events."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base


def _counter() -> Mapped[int]:
    return mapped_column(BigInteger, default=0, server_default="0")


class RollupMeasures:
    """The measures both rollups keep, each a counter maintained from the same deltas."""

    leads: Mapped[int] = _counter()
    opportunities: Mapped[int] = _counter()
    pipeline_minor: Mapped[int] = _counter()
    won: Mapped[int] = _counter()
    won_minor: Mapped[int] = _counter()
    revenue_minor: Mapped[int] = _counter()
    sourced_revenue_minor: Mapped[int] = _counter()
    expansion_revenue_minor: Mapped[int] = _counter()


class ReferralDailyRollup(RollupMeasures, Base):
    """Referral-sourced activity per UTC day, program, advocate, channel and currency.

    Each measure is dated by its own event: leads by referral creation, pipeline by opportunity
    creation, won by close date, revenue by occurrence. Rejected referrals count nowhere.
    """

    __tablename__ = "referral_daily_rollups"
    __table_args__ = (
        Index("ix_referral_daily_rollups_program_day", "program_id", "day"),
        Index("ix_referral_daily_rollups_advocate_day", "advocate_id", "day"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    advocate_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)


class ProgramDailyRollup(RollupMeasures, Base):
    """The same measures without the advocate: what program, channel and month reports read.

    Kept in the same transaction as ``ReferralDailyRollup`` from the same deltas; a program's
    90-day report reads at most 90 x channels x currencies rows.
    """

    __tablename__ = "program_daily_rollups"

    program_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
