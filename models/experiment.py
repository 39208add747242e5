"""Holdout experiments: which advocates a program withholds its asks from, recorded once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base, created_at, enum_check, pk
from vouch.models.enums import ExperimentGroup, ExperimentStatus


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        enum_check("status", ExperimentStatus),
        CheckConstraint("holdout_bps BETWEEN 100 AND 5000", name="holdout_range"),
        CheckConstraint("min_detectable_lift_bps BETWEEN 100 AND 100000", name="mde_range"),
        CheckConstraint("withhold_asks OR withhold_widget_prompt", name="withholds_something"),
        # At most one experiment per program that is not over.
        Index(
            "uq_experiments_program_open",
            "program_id",
            unique=True,
            postgresql_where=text("status <> 'ended'"),
        ),
    )

    id: Mapped[int] = pk()
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=ExperimentStatus.RUNNING)
    # Planned share of eligible advocates held out, in basis points (1000 = 10%).
    holdout_bps: Mapped[int] = mapped_column(Integer)
    # What treatment has and the holdout does not: automated asks, the widget's referral prompt.
    withhold_asks: Mapped[bool] = mapped_column(Boolean, default=True)
    withhold_widget_prompt: Mapped[bool] = mapped_column(Boolean, default=True)
    # The relative lift the analyst wants to be able to detect (1000 = 10%), for the power check.
    min_detectable_lift_bps: Mapped[int] = mapped_column(Integer, default=1000)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()


class ExperimentAssignment(Base):
    """One advocate's group in one experiment: inserted once, never updated."""

    __tablename__ = "experiment_assignments"
    __table_args__ = (
        enum_check("arm", ExperimentGroup),
        CheckConstraint("stratum BETWEEN 0 AND 3", name="stratum_range"),
        Index("ix_experiment_assignments_advocate_id", "advocate_id"),
    )

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    advocate_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("advocates.id", ondelete="CASCADE"), primary_key=True
    )
    arm: Mapped[str] = mapped_column(String(16))
    # The advocate's tier when assigned (0 = untiered): groups are balanced within each tier.
    stratum: Mapped[int] = mapped_column(SmallInteger)
    # The advocate's position in the deterministic hash order of its stratum.
    hash_key: Mapped[str] = mapped_column(String(16))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
