"""Provider events seen, the durable fetch queue, and provider objects known to a referral.

``begin`` records an event id once (``INSERT … ON CONFLICT DO NOTHING``): the first delivery
gets ``None`` and applies the event in the caller's transaction; a redelivery gets the stored
row back and applies nothing. A refused event is recorded as ``failed`` with its reason in a
transaction of its own (``record_failure``), so a retry is answered the same way and the event
is not lost. Jobs (``integration_jobs``) are claimed with ``FOR UPDATE SKIP LOCKED`` and retried
with exponential backoff; a provider's ``Retry-After`` sets the next attempt exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.errors import ValidationFailed
from vouch.core.paging import Page, paginate
from vouch.models import ExternalRef, IntegrationEvent, IntegrationJob
from vouch.models.enums import IntegrationEventStatus, IntegrationJobStatus, IntegrationProvider

MAX_JOB_ATTEMPTS = 10
JOB_BACKOFF_BASE = timedelta(seconds=15)
JOB_BACKOFF_CAP = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Seen:
    """A redelivered event: what happened the first time."""

    status: str
    result: dict[str, Any]
    detail: str | None


async def begin(
    session: AsyncSession,
    *,
    provider: str,
    event_id: str,
    event_type: str,
    object_id: str | None,
    now: datetime,
) -> Seen | None:
    """Record the event as in progress; ``None`` the first time, else what was recorded."""
    inserted = await session.scalar(
        insert(IntegrationEvent)
        .values(
            provider=provider,
            event_id=event_id[:255],
            event_type=event_type[:64],
            object_id=object_id[:64] if object_id else None,
            status=IntegrationEventStatus.PROCESSED,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(IntegrationEvent.id)
    )
    if inserted is not None:
        return None
    row = await session.scalar(
        select(IntegrationEvent).where(
            IntegrationEvent.provider == provider, IntegrationEvent.event_id == event_id[:255]
        )
    )
    assert row is not None
    return Seen(status=row.status, result=dict(row.result), detail=row.detail)


async def finish(
    session: AsyncSession,
    *,
    provider: str,
    event_id: str,
    status: str,
    result: dict[str, Any] | None = None,
    detail: str | None = None,
) -> None:
    await session.execute(
        update(IntegrationEvent)
        .where(IntegrationEvent.provider == provider, IntegrationEvent.event_id == event_id[:255])
        .values(status=status, result=result or {}, detail=detail[:500] if detail else None)
    )


async def record_failure(
    session: AsyncSession,
    *,
    provider: str,
    event_id: str,
    event_type: str,
    object_id: str | None,
    detail: str,
    now: datetime,
) -> None:
    """Keep a refused event with its reason (call in a fresh transaction after a rollback)."""
    await session.execute(
        insert(IntegrationEvent)
        .values(
            provider=provider,
            event_id=event_id[:255],
            event_type=event_type[:64],
            object_id=object_id[:64] if object_id else None,
            status=IntegrationEventStatus.FAILED,
            detail=detail[:500],
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
    )


async def event_counts(session: AsyncSession, provider: str) -> dict[str, int]:
    """How many events of a provider ended in each status."""
    rows = await session.execute(
        select(IntegrationEvent.status, func.count())
        .where(IntegrationEvent.provider == provider)
        .group_by(IntegrationEvent.status)
    )
    return {status: int(n) for status, n in rows.all()}


# --- provider objects known to belong to a referral --------------------------------------------


async def remember(
    session: AsyncSession,
    *,
    provider: str,
    kind: str,
    external_id: str | None,
    referral_id: int,
    now: datetime,
) -> None:
    """Note that a provider object (customer, subscription, promotion code) is the referral's;
    the first referral recorded for an object keeps it."""
    if not external_id:
        return
    await session.execute(
        insert(ExternalRef)
        .values(
            provider=provider,
            kind=kind,
            external_id=external_id[:255],
            referral_id=referral_id,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider", "kind", "external_id"])
    )


async def referral_of(
    session: AsyncSession, *, provider: str, kind: str, external_ids: list[str]
) -> int | None:
    """The referral a provider object was recorded for, if any (first of ``external_ids``)."""
    ids = [i[:255] for i in external_ids if i]
    if not ids:
        return None
    result = await session.execute(
        select(ExternalRef.external_id, ExternalRef.referral_id).where(
            ExternalRef.provider == provider,
            ExternalRef.kind == kind,
            ExternalRef.external_id.in_(ids),
        )
    )
    rows: dict[str, int] = {row[0]: row[1] for row in result.all()}
    for external_id in ids:
        if external_id in rows:
            return int(rows[external_id])
    return None


# --- the fetch queue ---------------------------------------------------------------------------


async def enqueue_job(
    session: AsyncSession, *, provider: str, kind: str, object_id: str, now: datetime
) -> None:
    """Queue a fetch of an object; a fetch already pending for it answers this one too."""
    await session.execute(
        insert(IntegrationJob)
        .values(
            provider=provider,
            kind=kind,
            object_id=object_id[:64],
            status=IntegrationJobStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["provider", "kind", "object_id"],
            # a literal, as in the index: a bound parameter stops matching it once PostgreSQL
            # switches the prepared statement to a generic plan
            index_where=text("status = 'pending'"),
        )
    )


async def claim_due(
    session: AsyncSession, *, provider: str, now: datetime, limit: int
) -> list[IntegrationJob]:
    """Due pending jobs, locked for this transaction (other workers skip them)."""
    return list(
        await session.scalars(
            select(IntegrationJob)
            .where(
                IntegrationJob.provider == provider,
                IntegrationJob.status == IntegrationJobStatus.PENDING,
                IntegrationJob.next_attempt_at <= now,
            )
            .order_by(IntegrationJob.next_attempt_at, IntegrationJob.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


# How long a claimed job is left to the worker that claimed it (it calls the provider with no
# transaction open): past this, a worker that died is assumed gone and another takes the job.
JOB_LEASE = timedelta(minutes=5)


async def lease_due(session: AsyncSession, *, provider: str, now: datetime) -> int | None:
    """Claim the next due job for this worker: it is not due again for ``JOB_LEASE``, so the
    caller can commit and call the provider with no transaction open. Its id, or None."""
    jobs = await claim_due(session, provider=provider, now=now, limit=1)
    if not jobs:
        return None
    jobs[0].next_attempt_at = now + JOB_LEASE
    jobs[0].updated_at = now
    return jobs[0].id


async def leased_job(session: AsyncSession, job_id: int) -> IntegrationJob | None:
    """The leased job, locked for the transaction that records its outcome (None if it was
    finished meanwhile, e.g. by another worker after the lease ran out)."""
    return await session.scalar(
        select(IntegrationJob)
        .where(IntegrationJob.id == job_id, IntegrationJob.status == IntegrationJobStatus.PENDING)
        .with_for_update()
    )


def job_backoff(attempts: int) -> timedelta:
    delay: timedelta = min(JOB_BACKOFF_CAP, JOB_BACKOFF_BASE * (2 ** max(0, attempts - 1)))
    return delay


def job_done(job: IntegrationJob, *, now: datetime) -> None:
    job.status = IntegrationJobStatus.DONE
    job.attempts += 1
    job.last_error = None
    job.updated_at = now


def job_retry(
    job: IntegrationJob, *, error: str, now: datetime, retry_after: float | None = None
) -> None:
    """Try again later (after ``retry_after`` seconds when the provider said so); dead after
    ``MAX_JOB_ATTEMPTS``."""
    job.attempts += 1
    job.last_error = error[:500]
    job.updated_at = now
    if job.attempts >= MAX_JOB_ATTEMPTS:
        job.status = IntegrationJobStatus.DEAD
        return
    delay = timedelta(seconds=retry_after) if retry_after is not None else job_backoff(job.attempts)
    job.next_attempt_at = now + delay


def job_dead(job: IntegrationJob, *, error: str, now: datetime) -> None:
    """A job that cannot succeed (e.g. the data is invalid): kept with its reason."""
    job.attempts += 1
    job.status = IntegrationJobStatus.DEAD
    job.last_error = error[:500]
    job.updated_at = now


async def list_events(
    session: AsyncSession,
    *,
    provider: str | None,
    status: str | None,
    first: int,
    after: int | None,
) -> Page[IntegrationEvent]:
    """Provider events as received, newest first (what was applied, ignored or refused, why)."""
    stmt = select(IntegrationEvent)
    if provider is not None:
        if provider not in {p.value for p in IntegrationProvider}:
            raise ValidationFailed(
                "provider must be hubspot, salesforce or stripe", field="provider"
            )
        stmt = stmt.where(IntegrationEvent.provider == provider)
    if status is not None:
        if status not in {s.value for s in IntegrationEventStatus}:
            raise ValidationFailed(
                "status must be processed, queued, ignored or failed", field="status"
            )
        stmt = stmt.where(IntegrationEvent.status == status)
    return await paginate(
        session, stmt, key=IntegrationEvent.id, first=first, after=after, descending=True
    )
