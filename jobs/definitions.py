"""The scheduled jobs: each a name, a default cron expression and one coroutine.

A job is an edge, like a mutation or a CLI command: it opens its sessions from the factory it is
given and commits its own transactions (a long job commits in steps, as ``asks_evaluate`` does
per advocate). Each returns a one-line summary for the run history — counts, never personal data.

Adding a job: write its coroutine here and add a ``Job`` to ``JOBS``; its schedule can then be
changed or turned off with ``VOUCH_JOB_SCHEDULES`` without a deploy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vouch.advocacy.asks import advocates_due, evaluate_asks, expire_due
from vouch.advocacy.tiers import recompute_all_tiers
from vouch.attribution import click_partitions, rollups
from vouch.attribution.claims import RATE_WINDOW
from vouch.attribution.clicks import prune_click_batches
from vouch.attribution.rewards import release_due_rewards
from vouch.core.errors import DomainError
from vouch.core.settings import ConfigError, Settings
from vouch.models import IdempotencyKey, JobRun, Program, RateLimitHit
from vouch.models.enums import ProgramStatus

Factory = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class JobContext:
    factory: Factory
    settings: Settings
    now: datetime


JobFunction = Callable[[JobContext], Awaitable[str]]


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    cron: str  # the default; VOUCH_JOB_SCHEDULES overrides it per job
    run: JobFunction


async def tiers_recompute(ctx: JobContext) -> str:
    """Rescore every active program's advocates, reassign tiers, expire lapsed asks and
    reservations (what ``vouch tiers recompute`` does without --program)."""
    async with ctx.factory() as session:
        runs = await recompute_all_tiers(session, now=ctx.now, reason="scheduled")
        asks, reservations = await expire_due(session, now=ctx.now)
        await session.commit()
    scored = sum(r.scored for r in runs)
    changes = sum(r.changes for r in runs)
    return (
        f"{len(runs)} programs, {scored} advocates scored, {changes} tier changes, "
        f"{asks} asks and {reservations} reservations expired"
    )


async def asks_evaluate(ctx: JobContext) -> str:
    """Queue and send the asks advocates' moments earn (``vouch asks evaluate``): one
    transaction per advocate, so an advocate's contact lock is held only briefly."""
    evaluated = sent = skipped = 0
    async with ctx.factory() as session:
        programs = list(
            await session.scalars(
                select(Program.id)
                .where(Program.status == ProgramStatus.ACTIVE)
                .order_by(Program.id)
            )
        )
        for program_id in programs:
            due = await advocates_due(session, program_id, now=ctx.now)
            await session.commit()
            for advocate_id in due:
                try:
                    result = await evaluate_asks(session, advocate_id, program_id, now=ctx.now)
                    await session.commit()
                except DomainError:
                    await session.rollback()
                    skipped += 1
                    continue
                evaluated += 1
                sent += 1 if result.sent else 0
    return (
        f"{len(programs)} programs, {evaluated} advocates evaluated, {sent} asks sent, "
        f"{skipped} skipped"
    )


async def rollups_verify(ctx: JobContext) -> str:
    """Recompute the reporting rollup from raw events and compare: equal, nothing changes;
    different, the rebuilt rollup is kept (healed) and the drift is reported as a failure so
    it alerts — incremental upkeep should never drift."""
    async with ctx.factory() as session:
        before = await rollups.snapshot(session)
        await rollups.rebuild(session)
        after = await rollups.snapshot(session)
        drift = sum(1 for delta in rollups.difference(after, before).values() if any(delta))
        if drift == 0:
            await session.rollback()
            return f"rollup matches the raw events ({len(after)} rows)"
        await session.commit()
    raise RollupDrift(f"rollup drifted from the raw events in {drift} rows; rebuilt")


class RollupDrift(RuntimeError):
    """The rollup disagreed with the raw events (it has been rebuilt)."""


async def rewards_release(ctx: JobContext) -> str:
    """Approve the rewards whose holding period ended, in programs that auto-approve them; one
    transaction per batch, so a large backlog is released in steps."""
    approved = 0
    while True:
        async with ctx.factory() as session:
            released = await release_due_rewards(session, ctx.now, limit=RELEASE_BATCH)
            await session.commit()
        approved += len(released)
        if len(released) < RELEASE_BATCH:
            return f"{approved} rewards approved at the end of their holding period"


RELEASE_BATCH = 1000


async def prune_rate_limits(ctx: JobContext) -> str:
    """Forget rate-limit windows that can no longer refuse anyone (older than the previous
    window)."""
    window_start = ctx.now.replace(minute=0, second=0, microsecond=0)
    async with ctx.factory() as session:
        result = await session.execute(
            delete(RateLimitHit).where(RateLimitHit.window_start < window_start - RATE_WINDOW)
        )
        await session.commit()
    return f"{_rows(result)} rate-limit windows pruned"


async def prune_click_batches_job(ctx: JobContext) -> str:
    """Forget click-batch ids older than a day (a retry comes within its process's lifetime)."""
    async with ctx.factory() as session:
        pruned = await prune_click_batches(session, now=ctx.now)
        await session.commit()
    return f"{pruned} click-batch ids pruned"


async def prune_idempotency_keys(ctx: JobContext) -> str:
    """Forget stored answers older than ``VOUCH_IDEMPOTENCY_KEY_TTL_HOURS``: a retry after that
    runs as a new request."""
    horizon = ctx.now - timedelta(hours=ctx.settings.idempotency_key_ttl_hours)
    async with ctx.factory() as session:
        result = await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.created_at < horizon)
        )
        await session.commit()
    return f"{_rows(result)} idempotency keys pruned"


async def prune_job_runs(ctx: JobContext) -> str:
    """Keep ``VOUCH_JOB_RUN_RETENTION_DAYS`` of job history."""
    horizon = ctx.now - timedelta(days=ctx.settings.job_run_retention_days)
    async with ctx.factory() as session:
        result = await session.execute(delete(JobRun).where(JobRun.started_at < horizon))
        await session.commit()
    return f"{_rows(result)} job runs pruned"


async def clicks_partitions(ctx: JobContext) -> str:
    """Create the monthly partitions of clicks from this month to
    ``VOUCH_CLICK_PARTITIONS_AHEAD`` months ahead (moving rows the default partition holds);
    with ``VOUCH_CLICK_RETENTION_MONTHS``, drop older months once their totals are kept."""
    async with ctx.factory() as session:
        upkeep = await click_partitions.ensure_partitions(
            session, now=ctx.now, ahead=ctx.settings.click_partitions_ahead
        )
        await session.commit()
    summary = (
        f"click partitions created: {', '.join(upkeep.created) or 'none'}; "
        f"{upkeep.moved_from_default} clicks moved"
    )
    keep = ctx.settings.click_retention_months
    if keep is None:
        return summary
    async with ctx.factory() as session:
        retention = await click_partitions.drop_expired(session, now=ctx.now, keep_months=keep)
        await session.commit()
    dropped = ", ".join(retention.dropped) or "none"
    return f"{summary}; dropped: {dropped} ({retention.summarised} clicks kept as totals)"


def _rows(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


JOBS: tuple[Job, ...] = (
    Job("tiers_recompute", "Rescore advocates and reassign tiers; expire lapsed asks.",
        "0 * * * *", tiers_recompute),
    Job("asks_evaluate", "Queue and send the asks advocates' moments earn.",
        "15 * * * *", asks_evaluate),
    Job("rewards_release", "Approve rewards whose holding period ended (auto-approving programs).",
        "*/5 * * * *", rewards_release),
    Job("rollups_verify", "Recompute the reporting rollup from raw events and compare.",
        "30 3 * * *", rollups_verify),
    Job("prune_rate_limits", "Forget rate-limit windows that can no longer refuse anyone.",
        "5 * * * *", prune_rate_limits),
    Job("prune_click_batches", "Forget click-batch ids older than a day.",
        "10 * * * *", prune_click_batches_job),
    Job("prune_idempotency_keys", "Forget idempotent answers past their lifetime.",
        "20 * * * *", prune_idempotency_keys),
    Job("prune_job_runs", "Forget job history past its retention.",
        "40 4 * * *", prune_job_runs),
    Job("clicks_partitions", "Create the monthly partitions of clicks ahead of time.",
        "50 2 * * *", clicks_partitions),
)  # fmt: skip


def schedules(settings: Settings, jobs: tuple[Job, ...] = JOBS) -> dict[str, str]:
    """Each enabled job's cron expression: its default, or ``VOUCH_JOB_SCHEDULES``'s.

    Unknown job names and invalid expressions stop start-up with a one-line message."""
    known = {job.name for job in jobs}
    unknown = sorted(set(settings.job_schedules) - known)
    if unknown:
        raise ConfigError(
            f"VOUCH_JOB_SCHEDULES names unknown jobs: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    chosen: dict[str, str] = {}
    for job in jobs:
        expression = settings.job_schedules.get(job.name, job.cron)
        if expression.lower() == "off":
            continue
        if not croniter.is_valid(expression):
            raise ConfigError(
                f"VOUCH_JOB_SCHEDULES: {expression!r} for {job.name} is not a cron expression "
                "(five fields, or six with seconds last), nor 'off'"
            )
        chosen[job.name] = expression
    return chosen
