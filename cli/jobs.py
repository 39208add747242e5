"""``vouch worker`` (the scheduled jobs without the web server) and ``vouch jobs``."""

from __future__ import annotations

import asyncio
import json
import signal

import click
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.cli.runner import database_url, handle_errors, load_settings, run_with_session
from vouch.core.clock import utcnow
from vouch.core.embedded import start_watchdog
from vouch.core.engine import create_engine
from vouch.core.sessions import session_factory
from vouch.core.settings import ConfigError
from vouch.jobs import runs
from vouch.jobs.background import background_loops
from vouch.jobs.definitions import JOBS, schedules
from vouch.jobs.scheduler import JobRunner, run_scheduler


@click.command()
@handle_errors
def worker() -> None:
    """Run the scheduled jobs (tiers, asks, pruning, ...) and the background loops (webhook
    delivery, code mails, HubSpot sync, Stripe promotion codes) until SIGTERM or Ctrl-C.

    `vouch serve` runs them too unless VOUCH_SCHEDULER, VOUCH_WEBHOOK_WORKER and
    VOUCH_INTEGRATION_WORKERS are false; any number of workers and serve processes may run
    side by side: each job runs once per due time, each piece of work is claimed once."""
    settings = load_settings()
    schedules(settings)
    url = database_url(settings)
    if settings.embedded:
        start_watchdog(settings.data_dir)  # revives a killed embedded server

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        engine = create_engine(
            url, pool_size=settings.db_pool_size, pgbouncer=settings.db_pgbouncer
        )
        factory = session_factory(engine)
        enabled = background_loops(factory, settings)
        loops = [asyncio.create_task(start_loop(), name=name) for name, start_loop in enabled]
        names = "".join(f", {name.removeprefix('vouch-')}" for name, _ in enabled)
        click.echo(f"vouch worker: running the scheduled jobs{names} (Ctrl-C to stop)", err=True)
        try:
            await run_scheduler(
                url,
                factory,
                settings,
                stop=stop,
                connect_args={"statement_cache_size": 0} if settings.db_pgbouncer else None,
            )
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await engine.dispose()

    asyncio.run(main())


@click.group("jobs")
def jobs_group() -> None:
    """Scheduled jobs: their status, or one run now."""


def _table() -> list[tuple[str, str, str | None]]:
    chosen = schedules(load_settings())
    return [(job.name, job.description, chosen.get(job.name)) for job in JOBS]


@jobs_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def jobs_list(as_json: bool) -> None:
    """Each job's schedule, last run, outcome and next run."""
    table = _table()

    async def work(session: AsyncSession) -> list[runs.JobStatus]:
        return await runs.job_statuses(session, table, now=utcnow())

    statuses = run_with_session(load_settings(), work, commit=False)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "jobs": [
                        {
                            "name": s.name,
                            "schedule": s.schedule,
                            "last_started_at": s.last_started_at.isoformat()
                            if s.last_started_at
                            else None,
                            "last_outcome": s.last_outcome.value if s.last_outcome else None,
                            "consecutive_failures": s.consecutive_failures,
                            "next_run_at": s.next_run_at.isoformat() if s.next_run_at else None,
                        }
                        for s in statuses
                    ]
                }
            )
        )
        return
    for s in statuses:
        last = "never run"
        if s.last_started_at is not None and s.last_outcome is not None:
            last = f"{s.last_outcome.value} at {s.last_started_at:%Y-%m-%d %H:%M:%S}Z"
        upcoming = f"next {s.next_run_at:%Y-%m-%d %H:%M:%S}Z" if s.next_run_at else "off"
        click.echo(f"{s.name:<24} {s.schedule or 'off':<16} {last:<36} {upcoming}")


@jobs_group.command("run")
@click.argument("name")
@handle_errors
def jobs_run(name: str) -> None:
    """Run one job now (recorded in its history like a scheduled run, retries included)."""
    job = next((j for j in JOBS if j.name == name), None)
    if job is None:
        raise ConfigError(f"no job named {name!r}; known: {', '.join(j.name for j in JOBS)}")
    settings = load_settings()
    url = database_url(settings)

    async def main() -> str:
        engine = create_engine(url, pool_size=2, pgbouncer=settings.db_pgbouncer)
        try:
            outcome = await JobRunner(session_factory(engine), settings).run(job)
        finally:
            await engine.dispose()
        return outcome.value

    outcome = asyncio.run(main())
    click.echo(f"{name}: {outcome}")
    if outcome != "succeeded":
        raise SystemExit(1)
