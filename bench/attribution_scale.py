"""Scale benchmark for attribution reporting.

Loads N clicks and M referrals (with events, opportunities and revenue) into a fresh database on
the embedded PostgreSQL in ``.vouch/bench``, then measures:

* the full rollup rebuild (target <= 60 s at 10M clicks / 1M referrals),
* a program's 90-day pipeline report from the rollup (target p95 <= 20 ms),
* an ad-hoc 30-day funnel on raw events (target p95 <= 1.5 s),
* the cost of the incremental upkeep on a write (record_revenue with rollup tracking).

Usage: ``python bench/attribution_scale.py --clicks 10000000 --referrals 1000000``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vouch.attribution import reports, revenue, rollups
from vouch.attribution.reports import ReportFilter
from vouch.attribution.revenue import RevenueData
from vouch.core.embedded import start_embedded
from vouch.core.engine import async_url, create_engine
from vouch.core.migrations import alembic_config
from vouch.core.sessions import session_factory

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 6, 30, tzinfo=UTC)
PROGRAMS = 20


def bench_engine(url: str) -> AsyncEngine:
    """Like the app's engine, without the 30 s command timeout (loading takes minutes)."""
    return create_async_engine(
        async_url(url),
        pool_size=2,
        connect_args={"command_timeout": 3600, "server_settings": {"timezone": "UTC"}},
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load(url: str, clicks: int, referrals: int, advocates: int) -> dict[str, float]:
    engine = bench_engine(url)
    timings: dict[str, float] = {}
    steps = [
        (
            "programs",
            f"""INSERT INTO programs (slug, name, description, status, currency,
                attribution_window_days, attribution_model, require_tracking_consent,
                frequency_cap_days, frequency_cap_count, tier1_cap_count, offer_kind, offer_value,
                offer_title, offer_terms, redemption_ttl_days, settings, rules_version)
            SELECT 'bench-' || g, 'Bench ' || g, '', 'active', 'USD', 30, 'last_touch', false,
                30, 1, 2, 'percent_off', 15, '15% off', '', 90, '{{}}', 1
            FROM generate_series(1, {PROGRAMS}) g""",
        ),
        (
            "advocates",
            f"""INSERT INTO advocates (external_id, email, email_normalized, first_name, last_name,
                is_icp, consent_referral, consent_marketing, opted_in_extra_asks, tier, score)
            SELECT 'adv-' || g, 'a' || g || '@corp.example', 'a' || g || '@corp.example', 'A' || g,
                'Bench', false, true, false, false, NULLIF(g % 4, 0), 50
            FROM generate_series(1, {advocates}) g""",
        ),
        (
            "links",
            f"""INSERT INTO referral_links (nonce, code, advocate_id, program_id, channel, status,
                created_at)
            SELECT g, 'c' || g, g, (g % {PROGRAMS}) + 1,
                (ARRAY['email','linkedin','slack','direct'])[(g % 4) + 1], 'active',
                TIMESTAMPTZ '2025-06-01' + (g % 30) * INTERVAL '1 day'
            FROM generate_series(1, {advocates}) g""",
        ),
        (
            "clicks",
            f"""INSERT INTO clicks (link_id, program_id, occurred_at, channel, utm, ip_hash,
                user_agent, is_bot, visitor_id)
            SELECT l, (l % {PROGRAMS}) + 1,
                TIMESTAMPTZ '{NOW.isoformat()}' - random() * INTERVAL '365 days', 'email', '{{}}',
                md5(g::text), 'Mozilla/5.0', random() < 0.05, 'v' || g
            FROM (SELECT g, 1 + (random() * ({advocates} - 1))::bigint AS l
                  FROM generate_series(1, {clicks}) g) s""",
        ),
        (
            "referrals",
            f"""INSERT INTO referrals (program_id, advocate_id, link_id, person_key, email, status,
                source, moderation, consent, created_at, updated_at)
            SELECT (l % {PROGRAMS}) + 1, l, l, 'p' || g || '@x.example', 'p' || g || '@x.example',
                CASE WHEN r < 0.50 THEN 'lead' WHEN r < 0.70 THEN 'qualified'
                     WHEN r < 0.80 THEN 'opportunity' WHEN r < 0.92 THEN 'won' ELSE 'lost' END,
                'landing', 'clear', true, t, t
            FROM (SELECT g, random() AS r, 1 + (random() * ({advocates} - 1))::bigint AS l,
                         TIMESTAMPTZ '{NOW.isoformat()}' - random() * INTERVAL '365 days' AS t
                  FROM generate_series(1, {referrals}) g) s""",
        ),
        (
            "referral events",
            """INSERT INTO referral_events (referral_id, from_status, to_status, at, source)
            SELECT id, NULL, 'lead', created_at, 'landing' FROM referrals
            UNION ALL
            SELECT id, 'lead', status, created_at + INTERVAL '2 days', 'crm'
            FROM referrals WHERE status <> 'lead'""",
        ),
        (
            "opportunities",
            """INSERT INTO opportunities (crm_id, referral_id, program_id, kind, amount_minor,
                currency, stage, status, close_date, created_at, updated_at)
            SELECT 'crm-' || id, id, program_id, 'new_business', 100000 + (id % 100) * 10000,
                'USD', status,
                CASE status WHEN 'won' THEN 'won' WHEN 'lost' THEN 'lost' ELSE 'open' END,
                ((created_at + INTERVAL '20 days') AT TIME ZONE 'UTC')::date,
                created_at + INTERVAL '3 days', created_at + INTERVAL '3 days'
            FROM referrals WHERE status IN ('opportunity', 'won', 'lost')""",
        ),
        (
            "revenue",
            """INSERT INTO revenue_events (external_id, opportunity_id, referral_id, program_id,
                kind, amount_minor, currency, occurred_at, source, created_at)
            SELECT 'ch-' || o.id || '-' || n, o.id, o.referral_id, o.program_id,
                CASE WHEN n = 1 THEN 'one_time' ELSE 'recurring' END, o.amount_minor / 2, 'USD',
                o.created_at + n * INTERVAL '25 days', 'billing', now()
            FROM opportunities o CROSS JOIN generate_series(1, 2) n WHERE o.status = 'won'""",
        ),
        ("analyze", "ANALYZE"),
    ]
    try:
        for name, sql in steps:
            started = time.perf_counter()
            async with engine.begin() as conn:
                await conn.execute(text(sql))
            timings[name] = time.perf_counter() - started
            print(f"  loaded {name:<16} {timings[name]:7.1f} s", flush=True)
    finally:
        await engine.dispose()
    return timings


async def measure(url: str, runs: int) -> dict[str, object]:
    engine = bench_engine(url)
    factory = session_factory(engine)
    out: dict[str, object] = {}
    try:
        async with factory() as session:
            started = time.perf_counter()
            rows = await rollups.rebuild(session)
            await session.commit()
            out["rebuild_s"] = time.perf_counter() - started
            out["rollup_rows"] = rows
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE referral_daily_rollups"))
            await conn.execute(text("ANALYZE program_daily_rollups"))
        print(f"  rebuild: {rows} rows in {out['rebuild_s']:.1f} s", flush=True)

        f90 = ReportFilter(program_id=7, since=date(2026, 4, 1), until=date(2026, 6, 30))
        timings: list[float] = []
        async with factory() as session:
            for i in range(runs):
                started = time.perf_counter()
                result = await reports.pipeline(
                    session, f90, group_by=("program", "channel", "month")[i % 3]
                )
                timings.append((time.perf_counter() - started) * 1000)
                assert result
        out["pipeline_p50_ms"] = statistics.median(timings)
        out["pipeline_p95_ms"] = pct(timings, 0.95)
        print(
            f"  pipeline 90d: p50 {out['pipeline_p50_ms']:.1f} ms, "
            f"p95 {out['pipeline_p95_ms']:.1f} ms"
        )

        timings = []
        async with factory() as session:
            for _ in range(runs):
                started = time.perf_counter()
                await reports.pipeline(session, f90, group_by="advocate")
                timings.append((time.perf_counter() - started) * 1000)
        out["pipeline_by_advocate_p95_ms"] = pct(timings, 0.95)
        print(f"  pipeline 90d by advocate: p95 {out['pipeline_by_advocate_p95_ms']:.1f} ms")

        f30 = ReportFilter(program_id=3, since=date(2026, 5, 31), until=date(2026, 6, 30))
        timings = []
        async with factory() as session:
            for _ in range(max(5, runs // 10)):
                started = time.perf_counter()
                steps = await reports.funnel(session, f30)
                timings.append((time.perf_counter() - started) * 1000)
        out["funnel_p50_ms"] = statistics.median(timings)
        out["funnel_p95_ms"] = pct(timings, 0.95)
        out["funnel_counts"] = [s.count for s in steps]
        print(
            f"  funnel 30d raw: p50 {out['funnel_p50_ms']:.1f} ms, "
            f"p95 {out['funnel_p95_ms']:.1f} ms"
        )

        # The write path with incremental rollup upkeep: one revenue event per transaction.
        timings = []
        async with factory() as session:
            ids = list(
                await session.scalars(
                    text("SELECT id FROM referrals WHERE status = 'won' ORDER BY id LIMIT :n"),
                    {"n": runs},
                )
            )
        for n, referral_id in enumerate(ids):
            async with factory() as session:
                started = time.perf_counter()
                await revenue.record_revenue(
                    session,
                    RevenueData(
                        external_id=f"bench-{referral_id}-{n}",
                        kind="recurring",
                        amount_minor=1000,
                        currency="USD",
                        occurred_at=NOW - timedelta(days=1),
                        referral_id=referral_id,
                    ),
                    source="bench",
                    actor="bench",
                    now=NOW,
                )
                await session.commit()
                timings.append((time.perf_counter() - started) * 1000)
        out["record_revenue_p50_ms"] = statistics.median(timings)
        out["record_revenue_p95_ms"] = pct(timings, 0.95)
        print(
            f"  record_revenue incl. rollup upkeep: p50 {out['record_revenue_p50_ms']:.1f} ms, "
            f"p95 {out['record_revenue_p95_ms']:.1f} ms"
        )
        # And the incremental rollup still equals a rebuild.
        async with factory() as session:
            incremental = await rollups.snapshot(session)
            await rollups.rebuild(session)
            out["incremental_equals_rebuild"] = incremental == await rollups.snapshot(session)
            await session.rollback()
        print(f"  incremental == rebuild: {out['incremental_equals_rebuild']}")
    finally:
        await engine.dispose()
    return out


async def month_partitions(url: str) -> None:
    """clicks is partitioned by month: create the months the loaded clicks span (a year back
    from NOW), as the upkeep job does going forward."""
    from vouch.attribution.click_partitions import ensure_partitions

    engine = bench_engine(url)
    async with session_factory(engine)() as session:
        upkeep = await ensure_partitions(
            session, now=NOW, ahead=1, since=(NOW - timedelta(days=366)).date()
        )
        await session.commit()
    await engine.dispose()
    print(f"  {len(upkeep.created)} monthly click partitions created", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=10_000_000)
    parser.add_argument("--referrals", type=int, default=1_000_000)
    parser.add_argument("--advocates", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Keep the loaded raw data; only re-create the rollup tables and measure.",
    )
    args = parser.parse_args()
    server = start_embedded(ROOT / ".vouch" / "bench", database="postgres")
    from sqlalchemy.engine import make_url

    admin_url = make_url(async_url(server))
    name = "vouch_bench_attr"

    async def recreate() -> None:
        admin = create_engine(
            admin_url.render_as_string(hide_password=False), pool_size=1
        ).execution_options(isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()

    url = admin_url.set(database=name).render_as_string(hide_password=False)
    from alembic import command

    if args.reuse:
        # A database loaded by an earlier version of this branch may lack newer rollup tables.
        async def ensure_tables() -> None:
            from vouch.models import Base

            engine = bench_engine(url)
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: Base.metadata.create_all(sync, checkfirst=True))
            await engine.dispose()

        asyncio.run(ensure_tables())
    else:
        asyncio.run(recreate())
        command.upgrade(alembic_config(url), "heads")
        asyncio.run(month_partitions(url))
        print(f"loading {args.clicks:,} clicks, {args.referrals:,} referrals", flush=True)
        started = time.perf_counter()
        asyncio.run(load(url, args.clicks, args.referrals, args.advocates))
        print(f"  load total {time.perf_counter() - started:.0f} s", flush=True)
    asyncio.run(measure(url, args.runs))


if __name__ == "__main__":
    main()
