"""`vouch worker` runs every scheduled job with no cron; `vouch jobs` shows and runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from sqlalchemy import text

from tests.cli.test_cli import ROOT, VOUCH, run
from vouch.jobs.definitions import JOBS

pytestmark = pytest.mark.committing


@pytest.fixture
async def clean_jobs(committing_engine):
    yield
    async with committing_engine.begin() as conn:
        await conn.execute(text("TRUNCATE pgqueuer.pgqueuer_schedules"))


def test_vouch_worker_runs_every_job_and_jobs_list_shows_them(clean_jobs, database_url, tmp_path):
    env = {
        "DATABASE_URL": database_url,
        "VOUCH_DATA_DIR": str(tmp_path),
        "VOUCH_JOB_SCHEDULES": ";".join(f"{job.name}=* * * * * *" for job in JOBS),
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "VOUCH_"))}
    full_env.update(env)
    worker = subprocess.Popen(
        [*VOUCH, "worker"],
        env=full_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        listed: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline:
            time.sleep(1)
            result = run(["jobs", "list", "--json"], **env)
            assert result.returncode == 0, result.stderr
            listed = {j["name"]: j for j in json.loads(result.stdout)["jobs"]}
            if all(j["last_outcome"] == "succeeded" for j in listed.values()):
                break
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=20)
    assert worker.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert sorted(listed) == sorted(job.name for job in JOBS)
    assert {j["last_outcome"] for j in listed.values()} == {"succeeded"}
    assert {j["consecutive_failures"] for j in listed.values()} == {0}

    once = run(["jobs", "run", "prune_job_runs"], **env)
    assert (once.returncode, once.stdout.strip()) == (0, "prune_job_runs: succeeded")
    unknown = run(["jobs", "run", "prune_everything"], **env)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: no job named 'prune_everything'")


def test_a_wrong_schedule_stops_start_up_with_one_line(database_url, tmp_path):
    for command in (["worker"], ["serve", "--port", "8931"]):
        result = run(
            command,
            DATABASE_URL=database_url,
            VOUCH_DATA_DIR=str(tmp_path),
            VOUCH_JOB_SCHEDULES="tiers_recompute=every hour",
        )
        assert result.returncode == 1
        assert result.stderr.strip() == (
            "error: VOUCH_JOB_SCHEDULES: 'every hour' for tiers_recompute is not a cron "
            "expression (five fields, or six with seconds last), nor 'off'"
        )
