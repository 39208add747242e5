"""The history of Vouch's scheduled jobs: one row per attempt, written by the worker."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vouch.models.base import Base, enum_check, pk


class JobOutcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobRun(Base):
    """One attempt of one scheduled job. Shared by every worker and host, so the admin API, the
    console and ``/metrics`` of any of them show the same last run, duration and outcome."""

    __tablename__ = "job_runs"
    __table_args__ = (
        enum_check("outcome", JobOutcome),
        Index("ix_job_runs_job_started_at", "job", "started_at"),
    )

    id: Mapped[int] = pk()
    job: Mapped[str] = mapped_column(String(64))
    # 1 for the scheduled run, 2.. for its retries after a failure
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16), default=JobOutcome.RUNNING.value)
    # a one-line summary of what the run did ("3 rows pruned"), never personal data
    summary: Mapped[str | None] = mapped_column(String(500))
    # the exception's type and first line, never a traceback with values
    error: Mapped[str | None] = mapped_column(String(500))
    # which process ran it (host:pid), to tell workers apart in the history
    worker: Mapped[str] = mapped_column(String(128))
