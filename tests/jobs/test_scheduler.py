"""Scheduled jobs run inside Vouch: once per due time across workers, recorded, retried with
backoff, and visible in GraphQL and /metrics."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from tests.api.graphql import gql
from tests.factories import make_api_key
from tests.web.test_console import _sign_in
from vouch.core.clock import utcnow
from vouch.core.sessions import session_factory
from vouch.core.settings import ConfigError, Settings
from vouch.jobs.definitions import JOBS, schedules
from vouch.jobs.scheduler import run_scheduler
from vouch.models import ClickBatch, IdempotencyKey, JobRun, RateLimitHit
from vouch.web.app import Overrides, create_app

pytestmark = pytest.mark.committing

EVERY_SECOND = "* * * * * *"
JOBS_QUERY = """{ scheduledJobs { name schedule lastRunAt lastOutcome lastAttempt lastSummary
  lastError consecutiveFailures nextRunAt lastDurationSeconds } }"""


def job_settings(settings: Settings, **overrides: object) -> Settings:
    values = {
        "job_schedules": {job.name: EVERY_SECOND for job in JOBS},
        "job_retry_delay": 0.2,
        **overrides,
    }
    return settings.model_copy(update=values)


@pytest.fixture
async def scheduler_tables(committing_engine):
    """pgqueuer's schedule rows live outside Vouch's tables: cleared after each test too."""
    yield committing_engine
    async with committing_engine.begin() as conn:
        await conn.execute(text("TRUNCATE pgqueuer.pgqueuer_schedules"))


async def ask(settings, sessionmaker, query_or_path: str, token: str | None = None):
    """GraphQL (or a GET of a path; of a console page, signed in with ``token``) against an
    app configured with these job settings."""
    app = create_app(settings, Overrides(sessionmaker=sessionmaker))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        if query_or_path.startswith("/console"):
            assert token is not None
            assert (await _sign_in(c, token)).status_code == 303
        if query_or_path.startswith("/"):
            return await c.get(query_or_path)
        return await gql(c, query_or_path, token=token)


async def run_workers(database_url, engine, settings, *, seconds: float, workers: int = 2):
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            run_scheduler(database_url, session_factory(engine), settings, stop=stop)
        )
        for _ in range(workers)
    ]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=15)


async def test_every_job_runs_once_per_due_time_across_two_workers(
    scheduler_tables, database_url, settings, sessionmaker, session
):
    engine = scheduler_tables
    now = utcnow()
    factory = session_factory(engine)
    async with factory() as s:
        s.add_all(
            [
                RateLimitHit(bucket="claim:old", window_start=now - timedelta(hours=3), hits=2),
                RateLimitHit(
                    bucket="claim:new",
                    window_start=now.replace(minute=0, second=0, microsecond=0),
                    hits=1,
                ),
                ClickBatch(id="old-batch", clicks=3, written_at=now - timedelta(days=2)),
                ClickBatch(id="new-batch", clicks=3, written_at=now),
                IdempotencyKey(
                    scope="s", key="old", request_hash="h", created_at=now - timedelta(hours=30)
                ),
                IdempotencyKey(scope="s", key="new", request_hash="h", created_at=now),
            ]
        )
        await s.commit()

    configured = job_settings(settings)
    await run_workers(database_url, engine, configured, seconds=5.5)

    async with factory() as s:
        runs = list(await s.scalars(select(JobRun).order_by(JobRun.id)))
        buckets = set(await s.scalars(select(RateLimitHit.bucket)))
        batches = set(await s.scalars(select(ClickBatch.id)))
        keys = set(await s.scalars(select(IdempotencyKey.key)))
    assert {r.job for r in runs} == {job.name for job in JOBS}
    assert all(r.outcome == "succeeded" and r.attempt == 1 for r in runs), [
        (r.job, r.outcome, r.error) for r in runs
    ]
    # Once per due time: never two runs of one job in the same second, from either worker.
    per_second = Counter((r.job, r.started_at.replace(microsecond=0)) for r in runs)
    assert max(per_second.values()) == 1
    assert len(runs) >= 2 * len(JOBS)  # it kept running, second after second
    assert buckets == {"claim:new"}
    assert batches == {"new-batch"}
    assert keys == {"new"}

    key = await make_api_key(session, scopes=["admin"])
    body = await ask(configured, sessionmaker, JOBS_QUERY, token=key)
    listed = {j["name"]: j for j in body["data"]["scheduledJobs"]}
    assert list(listed) == [job.name for job in JOBS]
    last_prune = [r for r in runs if r.job == "prune_idempotency_keys"][-1]
    shown = listed["prune_idempotency_keys"]
    assert shown["schedule"] == EVERY_SECOND
    assert shown["lastOutcome"] == "SUCCEEDED"
    assert shown["lastAttempt"] == 1
    assert shown["lastSummary"] == "0 idempotency keys pruned"
    assert shown["consecutiveFailures"] == 0
    assert shown["lastError"] is None
    assert shown["lastRunAt"] == last_prune.started_at.isoformat()
    assert shown["nextRunAt"] > shown["lastRunAt"]
    assert shown["lastDurationSeconds"] == pytest.approx(
        (last_prune.finished_at - last_prune.started_at).total_seconds()  # type: ignore[operator]
    )


async def test_a_failing_job_is_retried_with_backoff_and_alerts_through_metrics(
    scheduler_tables, database_url, settings, sessionmaker, session
):
    engine = scheduler_tables
    factory = session_factory(engine)
    old = utcnow() - timedelta(days=3)
    async with factory() as s:
        s.add(IdempotencyKey(scope="s", key="kept", request_hash="h", created_at=old))
        await s.commit()
    # A real failure from PostgreSQL: deleting from idempotency_keys is refused.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'deletes refused for this test'; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse_delete BEFORE DELETE ON idempotency_keys "
                "FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
            )
        )
    try:
        only = job_settings(
            settings,
            job_schedules={
                **{job.name: "off" for job in JOBS},
                "prune_idempotency_keys": EVERY_SECOND,
            },
            job_max_attempts=3,
        )
        await run_workers(database_url, engine, only, seconds=2.5, workers=2)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER refuse_delete ON idempotency_keys"))
            await conn.execute(text("DROP FUNCTION refuse_delete()"))

    async with factory() as s:
        runs = list(await s.scalars(select(JobRun).order_by(JobRun.id)))
        keys = set(await s.scalars(select(IdempotencyKey.key)))
    first = runs[:3]
    assert [(r.job, r.attempt, r.outcome) for r in first] == [
        ("prune_idempotency_keys", 1, "failed"),
        ("prune_idempotency_keys", 2, "failed"),
        ("prune_idempotency_keys", 3, "failed"),
    ]
    assert all("deletes refused for this test" in (r.error or "") for r in first)
    # exponential backoff: 0.2 s, then 0.4 s between attempts
    assert all(r.finished_at is not None for r in first)
    gaps = [
        (b.started_at - a.finished_at).total_seconds()  # type: ignore[operator]
        for a, b in itertools.pairwise(first)
    ]
    assert gaps[0] >= 0.2
    assert gaps[1] >= 0.4
    assert keys == {"kept"}  # nothing was deleted

    failed = len([r for r in runs if r.outcome == "failed"])
    response = await ask(only, sessionmaker, "/metrics")
    assert response.status_code == 200
    assert f'vouch_job_consecutive_failures{{job="prune_idempotency_keys"}} {failed}.0' in (
        response.text
    )
    assert 'vouch_job_last_success{job="prune_idempotency_keys"} 0.0' in response.text
    assert 'vouch_job_attempts_total{job="prune_idempotency_keys",outcome="failed"}' in (
        response.text
    )
    key = await make_api_key(session, scopes=["admin"])
    body = await ask(only, sessionmaker, JOBS_QUERY, token=key)
    shown = {j["name"]: j for j in body["data"]["scheduledJobs"]}["prune_idempotency_keys"]
    assert shown["lastOutcome"] == "FAILED"
    assert shown["consecutiveFailures"] == failed
    assert "deletes refused for this test" in shown["lastError"]
    assert shown["lastSummary"] is None
    page = await ask(only, sessionmaker, "/console/jobs", token=key)
    assert page.status_code == 200
    assert '<tr data-job="prune_idempotency_keys" data-outcome="failed">' in page.text, page.text
    assert f'<td data-failures="{failed}">{failed}</td>' in page.text
    assert "deletes refused for this test" in page.text


async def test_scheduled_jobs_need_the_admin_scope(client, session):
    key = await make_api_key(session, scopes=["write"])
    body = await gql(client, JOBS_QUERY, token=key, expect_errors=True)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await _sign_in(client, key)).status_code == 303
    page = await client.get("/console/jobs")
    assert page.status_code == 403
    assert "Jobs</a>" not in (await client.get("/console/moderation")).text


def test_schedules_follow_the_settings_and_refuse_mistakes(settings):
    chosen = schedules(
        settings.model_copy(
            update={"job_schedules": {"tiers_recompute": "off", "asks_evaluate": "*/5 * * * *"}}
        )
    )
    assert "tiers_recompute" not in chosen
    assert chosen["asks_evaluate"] == "*/5 * * * *"
    assert chosen["prune_rate_limits"] == "5 * * * *"
    with pytest.raises(ConfigError, match="unknown jobs: tier_recompute"):
        schedules(settings.model_copy(update={"job_schedules": {"tier_recompute": "0 * * * *"}}))
    with pytest.raises(ConfigError, match="not a cron expression"):
        schedules(settings.model_copy(update={"job_schedules": {"tiers_recompute": "hourly"}}))
    values: dict[str, Any] = {
        "VOUCH_JOB_SCHEDULES": "tiers_recompute=0 */6 * * *; rollups_verify=off"
    }
    parsed = Settings(**values)
    assert parsed.job_schedules == {"tiers_recompute": "0 */6 * * *", "rollups_verify": "off"}
