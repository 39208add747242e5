"""Benchmark for reward-policy backtests (target: a 90-day backtest over 1M referrals <= 10 s).

Loads one program with N referrals over 90 days into a fresh database on the embedded
PostgreSQL in ``.vouch/bench``: every referral's signup event, qualified/opportunity/won/lost
steps, a charge per won referral (some refunded) and the ledger the rules would have written
(won rewards, a third approved). The program has a two-sided, tiered, capped rule set with a
revenue share. Then it times ``attribution.backtest.backtest`` end to end (the facts read in
five statements, the replay in Python) for the program's current rules and for a proposal.

Usage: ``python bench/backtest.py --referrals 1000000 [--reuse] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from vouch.attribution import backtest as bt
from vouch.core.embedded import start_embedded
from vouch.core.engine import async_url, create_engine
from vouch.core.migrations import alembic_config

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 1, tzinfo=UTC)
NAME = "vouch_bench_backtest"


def bench_engine(url: str) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=2,
        connect_args={"command_timeout": 3600, "server_settings": {"timezone": "UTC"}},
    )


def steps(referrals: int, advocates: int) -> list[tuple[str, str]]:
    start = (NOW - timedelta(days=90)).isoformat()
    return [
        (
            "program",
            """INSERT INTO programs (slug, name, description, status, currency,
                attribution_window_days, attribution_model, require_tracking_consent,
                frequency_cap_days, frequency_cap_count, tier1_cap_count, offer_kind, offer_value,
                offer_title, offer_terms, redemption_ttl_days, settings, rules_version)
            VALUES ('bench', 'Bench', '', 'active', 'USD', 30, 'last_touch', false, 30, 1, 2,
                'percent_off', 15, '15% off', '', 90, '{}', 1)""",
        ),
        (
            "rules",
            """INSERT INTO reward_rules (program_id, name, side, trigger, calc, kind, amount_minor,
                currency, percent_bps, points, from_nth_referral, cap_count, cap_period_days,
                clawback_days, active)
            VALUES (1, 'friend signup', 'referred', 'signup', 'fixed', 'credit', 1000, 'USD', 0,
                    0, 1, NULL, 365, 60, true),
                   (1, 'referrer won', 'referrer', 'won', 'fixed', 'credit', 5000, 'USD', 0, 0, 1,
                    10, 365, 60, true),
                   (1, 'referrer won, 5th on', 'referrer', 'won', 'fixed', 'credit', 7500, 'USD',
                    0, 0, 5, 10, 365, 60, true),
                   (1, 'revenue share', 'referrer', 'revenue', 'percent', 'cash', 0, 'USD', 1000,
                    0, 1, NULL, 365, 90, true)""",
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
            "referrals",
            f"""INSERT INTO referrals (program_id, advocate_id, person_key, email, status,
                source, moderation, consent, created_at, updated_at)
            SELECT 1, a, 'p' || g || '@x.example', 'p' || g || '@x.example',
                CASE WHEN r < 0.50 THEN 'lead' WHEN r < 0.70 THEN 'qualified'
                     WHEN r < 0.80 THEN 'opportunity' WHEN r < 0.92 THEN 'won' ELSE 'lost' END,
                'landing', 'clear', true, t, t
            FROM (SELECT g, random() AS r, 1 + (random() * ({advocates} - 1))::bigint AS a,
                         TIMESTAMPTZ '{start}' + random() * INTERVAL '80 days' AS t
                  FROM generate_series(1, {referrals}) g) s""",
        ),
        (
            "referral events",
            """INSERT INTO referral_events (referral_id, from_status, to_status, at, source)
            SELECT id, NULL, 'lead', created_at, 'landing' FROM referrals
            UNION ALL
            SELECT id, 'lead', 'qualified', created_at + INTERVAL '2 days', 'crm'
            FROM referrals WHERE status <> 'lead'
            UNION ALL
            SELECT id, 'qualified', 'won', created_at + INTERVAL '5 days', 'crm'
            FROM referrals WHERE status = 'won'
            UNION ALL
            SELECT id, 'qualified', 'lost', created_at + INTERVAL '5 days', 'crm'
            FROM referrals WHERE status = 'lost'""",
        ),
        (
            "revenue",
            """INSERT INTO revenue_events (external_id, referral_id, program_id, kind,
                amount_minor, currency, occurred_at, source, data)
            SELECT 'ch-' || id, id, 1, 'one_time', 100000 + (id % 100) * 1000, 'USD',
                created_at + INTERVAL '6 days', 'billing', '{}'
            FROM referrals WHERE status = 'won'
            UNION ALL
            SELECT 're-' || id, id, 1, 'refund', 50000, 'USD', created_at + INTERVAL '8 days',
                'billing', jsonb_build_object('refunds_external_id', 'ch-' || id)
            FROM referrals WHERE status = 'won' AND id % 20 = 0""",
        ),
        (
            "rewards",
            """INSERT INTO rewards (program_id, rule_id, referral_id, advocate_id, side,
                trigger_ref, kind, amount_minor, currency, points, state, clawback_until,
                created_at)
            SELECT 1, 2, id, advocate_id, 'referrer', '', 'credit', 5000, 'USD', 0,
                CASE WHEN id % 3 = 0 THEN 'approved' ELSE 'pending' END,
                created_at + INTERVAL '65 days', created_at + INTERVAL '5 days'
            FROM referrals WHERE status = 'won'""",
        ),
        (
            "reward entries",
            """INSERT INTO reward_entries (reward_id, state, at, actor, amount_minor)
            SELECT id, 'pending', created_at, 'system', amount_minor FROM rewards
            UNION ALL
            SELECT id, 'approved', created_at + INTERVAL '1 day', 'ops', amount_minor
            FROM rewards WHERE state = 'approved'""",
        ),
        ("analyze", "ANALYZE"),
    ]


async def load(url: str, referrals: int, advocates: int) -> None:
    engine = bench_engine(url)
    try:
        for name, sql in steps(referrals, advocates):
            started = time.perf_counter()
            async with engine.begin() as conn:
                await conn.execute(text(sql))
            print(f"  loaded {name:<16} {time.perf_counter() - started:7.1f} s", flush=True)
    finally:
        await engine.dispose()


async def measure(url: str, runs: int, processes: int) -> None:
    engine = bench_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    since, until = (NOW - timedelta(days=90)).date(), NOW.date()
    try:
        async with sessions() as session:
            counts = (
                await session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM referrals), "
                        "(SELECT count(*) FROM referral_events), "
                        "(SELECT count(*) FROM revenue_events), (SELECT count(*) FROM rewards)"
                    )
                )
            ).one()
            print(
                f"referrals {counts[0]:,}, lifecycle events {counts[1]:,}, "
                f"revenue events {counts[2]:,}, rewards {counts[3]:,}"
            )
            current = [
                bt.PolicyRule.of(r)
                for r in await session.scalars(bt.select(bt.RewardRule).order_by(bt.RewardRule.id))
            ]
        proposal = [replace(r, amount_minor=r.amount_minor * 2) for r in current]
        for label, rules in (("current rules", None), ("proposal (fixed amounts x2)", proposal)):
            async with sessions() as session:
                started = time.perf_counter()
                end = datetime.combine(until, datetime.min.time(), UTC)
                facts = await bt.load_facts(session, 1, end)
                facts_alone = time.perf_counter() - started
                events = len(facts.events)
                del facts
            for n in sorted({1, processes}):
                totals = []
                for _ in range(runs):
                    async with sessions() as session:
                        started = time.perf_counter()
                        result = await bt.backtest(
                            session, 1, rules, since=since, until=until, processes=n
                        )
                        totals.append(time.perf_counter() - started)
                usd = result.currencies[0]
                print(
                    f"{label}, {n} process{'es' if n > 1 else ''}: end to end median "
                    f"{statistics.median(totals):.2f} s (runs "
                    f"{', '.join(f'{t:.2f}' for t in totals)}"
                    f"{'; the first starts the pool' if n > 1 else ''}); "
                    f"reading all the facts alone {facts_alone:.2f} s ({events:,} events); "
                    f"proposed cost {usd.proposed_cost_minor / 100:,.2f} USD, actual "
                    f"{usd.actual_cost_minor / 100:,.2f} USD",
                    flush=True,
                )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--referrals", type=int, default=1_000_000)
    parser.add_argument("--advocates", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="Also measure the replay in this many worker processes (and 1).",
    )
    parser.add_argument("--reuse", action="store_true", help="Keep the loaded data.")
    args = parser.parse_args()
    server = start_embedded(ROOT / ".vouch" / "bench", database="postgres")
    admin_url = make_url(async_url(server))
    url = admin_url.set(database=NAME).render_as_string(hide_password=False)
    if not args.reuse:

        async def recreate() -> None:
            admin = create_engine(
                admin_url.render_as_string(hide_password=False), pool_size=1
            ).execution_options(isolation_level="AUTOCOMMIT")
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
                await conn.execute(text(f'CREATE DATABASE "{NAME}"'))
            await admin.dispose()

        from alembic import command

        asyncio.run(recreate())
        command.upgrade(alembic_config(url), "heads")
        print(f"loading {args.referrals:,} referrals", flush=True)
        asyncio.run(load(url, args.referrals, args.advocates))
    asyncio.run(measure(url, args.runs, args.processes))


if __name__ == "__main__":
    main()
