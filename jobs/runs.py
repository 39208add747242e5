"""The job history (``job_runs``) and each job's status, as the admin API, the console and
``/metrics`` show it.

Definitions (one for every surface): a job's *last run* is its most recent attempt; its
*duration* is that attempt's finished_at - started_at; its *consecutive failures* count the
failed attempts since its last successful one; its *next run* is when the scheduler will next
claim it (pgqueuer's schedule row), or, before any worker has registered it, the next time its
cron expression names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.models import JobOutcome, JobRun


@dataclass(frozen=True)
class JobStatus:
    name: str
    description: str
    schedule: str | None  # None: turned off
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: JobOutcome | None
    last_attempt: int | None
    last_summary: str | None
    last_error: str | None
    consecutive_failures: int
    next_run_at: datetime | None

    @property
    def last_duration_seconds(self) -> float | None:
        if self.last_started_at is None or self.last_finished_at is None:
            return None
        return (self.last_finished_at - self.last_started_at).total_seconds()


def normalized(expression: str) -> str:
    """The cron expression as pgqueuer stores it (croniter's normal form)."""
    return " ".join(str(field) for field in croniter(expression).expressions)


async def start_run(
    session: AsyncSession, *, job: str, attempt: int, worker: str, now: datetime
) -> int:
    run = JobRun(job=job, attempt=attempt, started_at=now, worker=worker[:128])
    session.add(run)
    await session.flush()
    return run.id


async def finish_run(
    session: AsyncSession,
    run_id: int,
    *,
    outcome: JobOutcome,
    now: datetime,
    summary: str | None = None,
    error: str | None = None,
) -> None:
    await session.execute(
        update(JobRun)
        .where(JobRun.id == run_id)
        .values(
            outcome=outcome.value,
            finished_at=now,
            summary=summary[:500] if summary else None,
            error=error[:500] if error else None,
        )
    )


_LATEST = text(
    "SELECT DISTINCT ON (job) job, started_at, finished_at, outcome, attempt, summary, error "
    "FROM job_runs WHERE job = ANY(:names) ORDER BY job, started_at DESC, id DESC"
)
_FAILURES = text(
    "SELECT r.job, count(*) AS failures FROM job_runs r "
    "WHERE r.job = ANY(:names) AND r.outcome = 'failed' AND r.started_at > COALESCE("
    "  (SELECT max(s.started_at) FROM job_runs s WHERE s.job = r.job AND s.outcome = 'succeeded'),"
    "  '-infinity') "
    "GROUP BY r.job"
)
_NEXT = text(
    "SELECT entrypoint, expression, next_run FROM pgqueuer.pgqueuer_schedules "
    "WHERE entrypoint = ANY(:names)"
)


async def job_statuses(
    session: AsyncSession,
    jobs: list[tuple[str, str, str | None]],
    *,
    now: datetime,
) -> list[JobStatus]:
    """The status of each (name, description, cron expression or None when off), in order."""
    names = [name for name, _, _ in jobs]
    latest = {row.job: row for row in await session.execute(_LATEST, {"names": names})}
    failures = {
        row.job: int(row.failures) for row in await session.execute(_FAILURES, {"names": names})
    }
    next_runs = {
        (row.entrypoint, row.expression): row.next_run
        for row in await session.execute(_NEXT, {"names": names})
    }
    out: list[JobStatus] = []
    for name, description, expression in jobs:
        row = latest.get(name)
        next_run: datetime | None = None
        if expression is not None:
            next_run = next_runs.get((name, normalized(expression)))
            if next_run is None:
                next_run = croniter(expression, start_time=now).get_next(datetime)
                next_run = next_run if next_run.tzinfo else next_run.replace(tzinfo=UTC)
        out.append(
            JobStatus(
                name=name,
                description=description,
                schedule=expression,
                last_started_at=row.started_at if row else None,
                last_finished_at=row.finished_at if row else None,
                last_outcome=JobOutcome(row.outcome) if row else None,
                last_attempt=row.attempt if row else None,
                last_summary=row.summary if row else None,
                last_error=row.error if row else None,
                consecutive_failures=failures.get(name, 0),
                next_run_at=next_run,
            )
        )
    return out
