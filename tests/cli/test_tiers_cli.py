"""``vouch tiers recompute`` against a real database (real commits, cleaned up afterwards)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.cli.test_cli import run
from vouch.core.clock import utcnow
from vouch.core.ids import encode_id
from vouch.core.sessions import session_factory
from vouch.models import Advocate, AdvocateScore, Ask, Program, Signal, TierEvent

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
        f"program {encode_id('Program', program.id)}: 3 scored, 0 tier change(s); tier 1/2/3: 0/1/1"
    )
    missing = run(["tiers", "recompute", "--program", "nope"], **env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no program with slug 'nope'"
    async with session_factory(committing_engine)() as s:
        assert await s.scalar(select(func.count()).select_from(TierEvent)) == 2


async def test_scheduled_ask_run_sends_one_ask_per_advocate(
    committing_engine, database_url, tmp_path
):
    async with session_factory(committing_engine)() as s:
        program = Program(slug="cli-asks", name="CLI asks")
        person = Advocate(external_id="cli-asks-1", email="asks@example.com")
        s.add_all([program, person])
        await s.flush()
        s.add(
            AdvocateScore(
                advocate_id=person.id,
                program_id=program.id,
                score=60.0,
                tier=2,
                contributions=[],
                computed_at=utcnow(),
            )
        )
        s.add(
            Signal(
                advocate_id=person.id,
                kind="nps",
                value=10,
                occurred_at=utcnow() - timedelta(days=1),
                source="survey",
                external_id="n1",
            )
        )
        s.add(
            Signal(
                advocate_id=person.id,
                kind="expansion",
                occurred_at=utcnow() - timedelta(days=2),
                source="crm",
                external_id="e1",
            )
        )
        await s.commit()
    env = {"DATABASE_URL": database_url, "VOUCH_DATA_DIR": str(tmp_path)}
    first = run(["asks", "evaluate", "--json"], **env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["programs"] == [
        {
            "program_id": encode_id("Program", program.id),
            "evaluated": 1,
            "queued": 2,
            "sent": 1,
            "skipped": 0,
        }
    ]
    second = run(["asks", "evaluate", "--program", "cli-asks"], **env)
    assert second.returncode == 0, second.stderr
    assert (
        second.stdout.strip()
        == f"program {encode_id('Program', program.id)}: 1 evaluated, 0 queued, 0 sent, 0 skipped"
    )
    async with session_factory(committing_engine)() as s:
        statuses = (await s.scalars(select(Ask.status).order_by(Ask.status))).all()
    assert statuses == ["queued", "sent"]
