"""``vouch worker`` runs the integration loops too, not only the scheduled jobs: a deployment
that keeps its web processes free of background work (VOUCH_WEBHOOK_WORKER=false,
VOUCH_INTEGRATION_WORKERS=false there) still gets its HubSpot deals synced."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import pytest
from sqlalchemy import select

from tests.cli.test_cli import ROOT, VOUCH
from tests.integrations.conftest import HUBSPOT_TOKEN
from tests.integrations.test_hubspot import FakeHubSpot
from vouch.attribution.integrations import events, hubspot
from vouch.core.clock import utcnow
from vouch.core.sessions import session_factory
from vouch.jobs.definitions import JOBS
from vouch.models import IntegrationJob, Opportunity

pytestmark = pytest.mark.committing


async def test_vouch_worker_syncs_queued_hubspot_deals(
    committing_engine, database_url, hubspot_api, tmp_path
):
    fake = FakeHubSpot(hubspot_api)
    fake.deal("555002")
    factory = session_factory(committing_engine)
    async with factory() as s:
        await events.enqueue_job(
            s, provider=hubspot.PROVIDER, kind=hubspot.JOB_KIND, object_id="555002", now=utcnow()
        )
        await s.commit()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "VOUCH_"))}
    env.update(
        DATABASE_URL=database_url,
        VOUCH_DATA_DIR=str(tmp_path),
        VOUCH_HUBSPOT_ACCESS_TOKEN=HUBSPOT_TOKEN,
        VOUCH_HUBSPOT_API_BASE=hubspot_api.url(),
        VOUCH_JOB_SCHEDULES=";".join(f"{job.name}=off" for job in JOBS),
    )
    worker = subprocess.Popen(  # noqa: ASYNC220 - spawning returns at once
        [*VOUCH, "worker"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        status = None
        for _ in range(150):
            await asyncio.sleep(0.2)
            async with factory() as s:
                status = await s.scalar(select(IntegrationJob.status))
            if status == "done":
                break
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert status == "done", stderr[-2000:]
    assert worker.returncode == 0, stderr[-2000:]
    assert "hubspot-sync" in stderr  # it says what it runs
    async with factory() as s:
        deal = await s.scalar(select(Opportunity.crm_id))
    assert deal == "555002"
