"""``vouch tiers recompute`` against a real database (real commits, cleaned up afterwards)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.clock import utcnow
from core.db import session_factory
from models import Advocate, Program, Signal, TierEvent
from tests.cli.test_cli import run

pytestmark = pytest.mark.committing


async def test_recompute_one_program_and_all(committing_engine, database_url, tmp_path):
    async with session_factory(committing_engine)() as s:
        program = Program(slug="cli-tiers", name="CLI tiers")
        people = [Advocate(external_id=f"cli-{i}", email=f"cli{i}@example.com") for i in range(3)]
        s.add_all([program, *people])
        await s.flush()
        for i, person in enumerate(people):
            s.add(
                Signal(
                    advocate_id=person.id,
                    kind="renewal",
                    occurred_at=utcnow() - timedelta(days=i + 1),
                    source="crm",
                    external_id=f"r{i}",
                )
            )
        await s.commit()
    env = {"DATABASE_URL": database_url, "VOUCH_DATA_DIR": str(tmp_path)}
    one = run(["tiers", "recompute", "--program", "cli-tiers", "--json"], **env)
    assert one.returncode == 0, one.stderr
    runs = json.loads(one.stdout)["runs"]
    assert [(r["scored"], r["changes"], r["tier1"], r["tier2"], r["tier3"]) for r in runs] == [
        (3, 2, 0, 1, 1)
    ]
    every = run(["tiers", "recompute"], **env)
    assert every.returncode == 0, every.stderr
    assert every.stdout.strip() == (
        f"program {program.id}: 3 scored, 0 tier change(s); tier 1/2/3: 0/1/1"
    )
    missing = run(["tiers", "recompute", "--program", "nope"], **env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no program with slug 'nope'"
    async with session_factory(committing_engine)() as s:
        assert await s.scalar(select(func.count()).select_from(TierEvent)) == 2
