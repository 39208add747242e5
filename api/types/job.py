"""Scheduled jobs as the admin API shows them (definitions in ``vouch.jobs.runs``)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Self

import strawberry

from vouch.jobs.runs import JobStatus


@strawberry.enum(name="JobOutcome", description="How a scheduled job's attempt ended.")
class JobOutcomeType(Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@strawberry.type(
    name="ScheduledJob",
    description="Work Vouch runs on its own schedule, once per due time across all workers.",
)
class ScheduledJobType:
    name: str = strawberry.field(description="The job's name, as VOUCH_JOB_SCHEDULES names it.")
    description: str = strawberry.field(description="What the job does.")
    schedule: str | None = strawberry.field(
        description="Its cron expression (UTC); null when turned off."
    )
    last_run_at: datetime | None = strawberry.field(
        description="When its most recent attempt started (UTC); null if it never ran."
    )
    last_finished_at: datetime | None = strawberry.field(
        description="When that attempt ended (UTC); null while it runs."
    )
    last_duration_seconds: float | None = strawberry.field(
        description="That attempt's duration in seconds; null while it runs or if it never ran."
    )
    last_outcome: JobOutcomeType | None = strawberry.field(
        description="How that attempt ended; null if it never ran."
    )
    last_attempt: int | None = strawberry.field(
        description="1 for a scheduled run, 2 and up for its retries after a failure."
    )
    last_summary: str | None = strawberry.field(
        description="What that attempt did ('12 keys pruned'); null unless it succeeded."
    )
    last_error: str | None = strawberry.field(
        description="The failed attempt's error type and first line."
    )
    consecutive_failures: int = strawberry.field(
        description="Failed attempts since its last success (0 when healthy)."
    )
    next_run_at: datetime | None = strawberry.field(
        description="When it is next due (UTC); null when turned off."
    )

    @classmethod
    def from_status(cls, s: JobStatus) -> Self:
        return cls(
            name=s.name,
            description=s.description,
            schedule=s.schedule,
            last_run_at=s.last_started_at,
            last_finished_at=s.last_finished_at,
            last_duration_seconds=s.last_duration_seconds,
            last_outcome=JobOutcomeType(s.last_outcome.value) if s.last_outcome else None,
            last_attempt=s.last_attempt,
            last_summary=s.last_summary,
            last_error=s.last_error,
            consecutive_failures=s.consecutive_failures,
            next_run_at=s.next_run_at,
        )
