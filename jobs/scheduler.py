"""The scheduler: pgqueuer's ``SchedulerManager`` claims each due job in PostgreSQL
(``UPDATE .. FOR UPDATE SKIP LOCKED`` on its schedule row), so a job runs once per due time
whichever of any number of workers and hosts sharing the database sees it first.

Vouch adds, through pgqueuer's executor extension point (``executor_factory``): the run history
in ``job_runs`` (every attempt: start, end, outcome, summary, error type), retries with
exponential backoff (``VOUCH_JOB_MAX_ATTEMPTS``, ``VOUCH_JOB_RETRY_DELAY``) while the schedule row
stays claimed (pgqueuer's heartbeat keeps it so), and the ``vouch_job_*`` metrics. A database
outage stops the scheduler; it starts again once the database answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
from typing import Any

import asyncpg
from pgqueuer.adapters.drivers.asyncpg import AsyncpgPoolDriver
from pgqueuer.adapters.persistence.qb import (
    QueryBuilderEnvironment,
    QueryQueueBuilder,
    QuerySchedulerBuilder,
)
from pgqueuer.adapters.persistence.queries import Queries
from pgqueuer.core.executors import ScheduleExecutor, ScheduleExecutorFactoryParameters
from pgqueuer.core.sm import SchedulerManager
from pgqueuer.domain import models as pgq_models
from pgqueuer.domain.settings import DBSettings
from prometheus_client import Counter
from sqlalchemy.engine import make_url

from vouch.core.clock import utcnow
from vouch.core.engine import async_url, is_database_unavailable
from vouch.core.settings import Settings
from vouch.jobs import runs
from vouch.jobs.definitions import JOBS, Factory, Job, JobContext, schedules
from vouch.models import JobOutcome

log = logging.getLogger("vouch.jobs")

JOB_ATTEMPTS = Counter(
    "vouch_job_attempts_total",
    "Scheduled job attempts run by this process, by outcome (failed attempts are retried)",
    ["job", "outcome"],
)

PGQUEUER_SCHEMA = "pgqueuer"  # migration 0005 installs pgqueuer's tables there
RESTART_DELAY = 2.0  # seconds between scheduler restarts while the database is away


def pgqueuer_settings() -> DBSettings:
    """pgqueuer's object names, given explicitly (it would otherwise read PGQUEUER_* from the
    environment; Vouch's settings are the only configuration)."""
    return DBSettings(db_schema=PGQUEUER_SCHEMA)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _describe(exc: BaseException) -> str:
    """The exception's type and first line: what an operator needs, with no traceback values."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:500] if first else type(exc).__name__


@dataclasses.dataclass
class JobRunner:
    """Runs one job with its retries and records every attempt."""

    factory: Factory
    settings: Settings
    worker: str = dataclasses.field(default_factory=worker_name)

    async def run(self, job: Job) -> JobOutcome:
        attempts = self.settings.job_max_attempts
        for attempt in range(1, attempts + 1):
            async with self.factory() as session:
                run_id = await runs.start_run(
                    session, job=job.name, attempt=attempt, worker=self.worker, now=utcnow()
                )
                await session.commit()
            outcome, summary, error = await self._attempt(job)
            async with self.factory() as session:
                await runs.finish_run(
                    session, run_id, outcome=outcome, now=utcnow(), summary=summary, error=error
                )
                await session.commit()
            JOB_ATTEMPTS.labels(job.name, outcome.value).inc()
            if outcome is JobOutcome.SUCCEEDED:
                return outcome
            if attempt < attempts:
                delay = self.settings.job_retry_delay * 2 ** (attempt - 1)
                log.warning(
                    "job %s attempt %d/%d failed; retrying in %.0f s",
                    job.name,
                    attempt,
                    attempts,
                    delay,
                )
                await asyncio.sleep(delay)
        log.error("job %s failed %d times; next try at its next scheduled time", job.name, attempts)
        return JobOutcome.FAILED

    async def _attempt(self, job: Job) -> tuple[JobOutcome, str | None, str | None]:
        try:
            summary = await job.run(JobContext(self.factory, self.settings, utcnow()))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_database_unavailable(exc):
                raise  # nothing can be recorded either; the scheduler restarts when it is back
            return JobOutcome.FAILED, None, _describe(exc)
        return JobOutcome.SUCCEEDED, summary, None


@dataclasses.dataclass
class _VouchExecutor(ScheduleExecutor):
    """pgqueuer's schedule executor, running a Vouch job through the runner."""

    job: Job | None = None
    runner: JobRunner | None = None

    async def execute(
        self, schedule: pgq_models.Schedule, context: pgq_models.ScheduleContext
    ) -> None:
        assert self.job is not None
        assert self.runner is not None
        await self.runner.run(self.job)


def _queries(pool: asyncpg.Pool) -> Queries:
    settings = pgqueuer_settings()
    return Queries(
        AsyncpgPoolDriver(pool),
        qbe=QueryBuilderEnvironment(settings),
        qbq=QueryQueueBuilder(settings),
        qbs=QuerySchedulerBuilder(settings),
    )


def build_manager(
    pool: asyncpg.Pool, runner: JobRunner, jobs: tuple[Job, ...] = JOBS
) -> SchedulerManager:
    """A SchedulerManager with every enabled job registered under its configured expression."""
    manager = SchedulerManager(_queries(pool))
    chosen = schedules(runner.settings, jobs)
    for job in jobs:
        expression = chosen.get(job.name)
        if expression is None:
            continue

        def executor(params: ScheduleExecutorFactoryParameters, job: Job = job) -> _VouchExecutor:
            return _VouchExecutor(params, job=job, runner=runner)

        async def unused(schedule: pgq_models.Schedule) -> None:  # the executor runs the job
            return None

        manager.schedule(job.name, expression, executor_factory=executor)(unused)
    return manager


def asyncpg_dsn(url: str) -> str:
    """A libpq-style URL asyncpg accepts (no ``+asyncpg`` driver name)."""
    return (
        make_url(async_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)
    )


async def run_scheduler(
    url: str,
    factory: Factory,
    settings: Settings,
    *,
    jobs: tuple[Job, ...] = JOBS,
    stop: asyncio.Event | None = None,
    connect_args: dict[str, Any] | None = None,
) -> None:
    """Run the scheduled jobs until ``stop`` is set (or the task is cancelled); a database
    outage only pauses them."""
    stop = stop or asyncio.Event()
    runner = JobRunner(factory, settings)
    schedules(settings, jobs)  # a configuration mistake fails here, not in the loop
    while not stop.is_set():
        started = time.monotonic()
        try:
            pool = await asyncpg.create_pool(
                asyncpg_dsn(url), min_size=1, max_size=2, **(connect_args or {})
            )
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            await _pause(stop, RESTART_DELAY)
            continue
        try:
            manager = build_manager(pool, runner, jobs)
            watcher = asyncio.create_task(_forward_stop(stop, manager.shutdown))
            try:
                await manager.run()
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_database_unavailable(exc):
                log.exception("the scheduler stopped; restarting")
            else:
                log.warning("the scheduler lost the database (%s); restarting", type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), timeout=5)
        if not stop.is_set():
            await _pause(stop, max(0.0, RESTART_DELAY - (time.monotonic() - started)))


async def _forward_stop(stop: asyncio.Event, shutdown: asyncio.Event) -> None:
    await stop.wait()
    shutdown.set()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
