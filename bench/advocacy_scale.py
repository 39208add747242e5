"""Scale check for the advocacy engine: tier recompute and a scheduled ask run.

Usage: python bench/advocacy_scale.py [advocates] [signals_per_advocate]
Runs against the embedded PostgreSQL in .vouch/bench (a scratch database, recreated).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vouch.advocacy.asks import advocates_due, evaluate_asks  # noqa: E402
from vouch.advocacy.tiers import recompute_tiers  # noqa: E402
from vouch.core.clock import utcnow  # noqa: E402
from vouch.core.embedded import start_embedded  # noqa: E402
from vouch.core.engine import create_engine  # noqa: E402
from vouch.core.migrations import alembic_config  # noqa: E402
from vouch.core.sessions import session_factory  # noqa: E402
from vouch.models import Advocate, Program, Signal  # noqa: E402

KINDS = [
    ("nps", lambda r: float(r.randint(0, 10))),
    ("usage_milestone", lambda r: None),
    ("renewal", lambda r: None),
    ("purchase", lambda r: None),
    ("support_resolved", lambda r: None),
    ("csat", lambda r: float(r.randint(1, 5))),
    ("expansion", lambda r: None),
    ("escalation_opened", lambda r: None),
]


async def main(n: int, per: int) -> None:
    from alembic import command

    server = start_embedded(ROOT / ".vouch" / "bench", database="postgres")
    admin = create_engine(server, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text('DROP DATABASE IF EXISTS "vouch_bench_advocacy" WITH (FORCE)'))
        await conn.execute(text('CREATE DATABASE "vouch_bench_advocacy"'))
    await admin.dispose()
    url = (
        make_url(server).set(database="vouch_bench_advocacy").render_as_string(hide_password=False)
    )
    await asyncio.to_thread(command.upgrade, alembic_config(url), "heads")
    engine = create_engine(url, pool_size=2, statement_timeout_ms=600_000)
    factory = session_factory(engine)
    rng = random.Random(7)
    now = utcnow()
    async with factory() as s:
        program = Program(slug="bench", name="Bench")
        s.add(program)
        await s.flush()
        program_id = program.id
        people = [
            {"external_id": f"b{i}", "email": f"b{i}@example.com", "account_id": f"a{i // 3}"}
            for i in range(n)
        ]
        ids: list[int] = []
        for start in range(0, n, 2_000):
            ids.extend(
                await s.scalars(
                    insert(Advocate).values(people[start : start + 2_000]).returning(Advocate.id)
                )
            )
        rows = []
        for pk in ids:
            for j in range(per):
                kind, value = rng.choice(KINDS)
                rows.append(
                    {
                        "advocate_id": pk,
                        "kind": kind,
                        "value": value(rng),
                        "occurred_at": now - timedelta(days=rng.randint(0, 365)),
                        "source": "bench",
                        "external_id": f"{pk}-{j}",
                    }
                )
        for start in range(0, len(rows), 4_000):
            await s.execute(insert(Signal).values(rows[start : start + 4_000]))
        await s.commit()
    print(f"seeded {n} advocates, {len(rows)} signals")

    async with factory() as s:
        t0 = time.perf_counter()
        run = await recompute_tiers(s, program_id, now=now)
        await s.commit()
        t1 = time.perf_counter()
    print(
        f"recompute_tiers: {t1 - t0:.2f} s for {run.scored} advocates ({run.changes} tier events)"
    )

    async with factory() as s:
        t0 = time.perf_counter()
        run = await recompute_tiers(s, program_id, now=now)
        await s.commit()
        t1 = time.perf_counter()
    print(f"recompute_tiers again (no changes): {t1 - t0:.2f} s, {run.changes} tier events")

    async with factory() as s:
        t0 = time.perf_counter()
        due = await advocates_due(s, program_id, now=now)
        sent = 0
        for pk in due:
            result = await evaluate_asks(s, pk, program_id, now=now)
            await s.commit()
            sent += 1 if result.sent else 0
        t1 = time.perf_counter()
    per_adv = (t1 - t0) / max(1, len(due)) * 1000
    print(
        f"scheduled ask run: {len(due)} due, {sent} sent, {t1 - t0:.2f} s ({per_adv:.1f} ms each)"
    )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 20_000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 5,
        )
    )
