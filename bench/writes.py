"""Write-path and cold-cache benchmark: claim, the conversion mutation with an idempotency key,
and landing hits that miss the cache — each against a hand-written Starlette + asyncpg handler
doing the same database work, measured with wrk in the same run (3 interleaved rounds).

    .venv/bin/python -m bench.writes [--seconds 5] [--rounds 3] [--no-write] [--only claim]
    .venv/bin/python -m bench.writes --open-loop 100 --seconds 30

``--open-loop RATE`` sends claims, then conversions, to Vouch on a fixed schedule of RATE
requests a second (latency counted from the scheduled instant, so queueing cannot hide) and
prints p50 / p99 / max and the answers that were not 2xx/3xx; nothing is written to RESULTS.md.

Uses DATABASE_URL if set, else the embedded PostgreSQL in .vouch/bench. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.landing import (  # noqa: E402
    SALT,
    SECRET,
    UA,
    WRK,
    Server,
    database_url,
    open_loop,
    prepare,
)
from vouch.core.codes import LinkCodec  # noqa: E402
from vouch.core.engine import create_engine  # noqa: E402
from vouch.core.security import sign  # noqa: E402

COLD_LINKS = 30_000  # more than the landing cache holds (20,000)
# Referrals waiting for their conversion: Vouch and its baseline each get half, so each moves
# its own referrals along the lifecycle and neither finds the other's already won.
REFERRALS = 40_000
ADVOCATES = 1_000
# Won referrals, each with its won new-business deal, that billing charges (the revenue
# scenario), and lead referrals the CRM pushes deals for (the opportunity scenario): half each
# for Vouch and its baseline.
WON = 4_000
DEALS = 20_000


def wrk(url: str, seconds: int, connections: int = 32) -> tuple[float, float, int, int]:
    """(requests/s, p99 ms, total, non-2xx/3xx) from one wrk run with bench/writes.lua."""
    out = subprocess.run(
        [
            WRK,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"User-Agent: {UA}",
            "-s",
            str(ROOT / "bench" / "writes.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
        env={**os.environ, "BENCH_RUN": secrets.token_hex(6)},  # see bench/writes.lua
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    value, unit = float(p99.group(1)), p99.group(2)  # type: ignore[union-attr]
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    payload = re.search(r"Payload errors: (\d+)", out)  # 200s carrying an error (writes.lua)
    errors = (int(bad.group(1)) if bad else 0) + (int(payload.group(1)) if payload else 0)
    return rps, p99_ms, total, errors


def open_loop_requests(
    workdir: Path, facts: dict[str, str], key: str
) -> dict[str, Callable[[int], bytes]]:
    """The same requests bench/writes.lua sends, for the open-loop runs: claims on random
    links with unique emails, conversions of distinct redemption codes with unique keys."""
    import json
    import random

    links = (workdir / "cold.txt").read_text().split()
    redemptions = (workdir / "redemptions.txt").read_text().split()
    run = secrets.token_hex(4)

    def http(path: str, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"User-Agent: {UA}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def claim(i: int) -> bytes:
        body = f"email=friend-{run}-{i}%40example.org&consent=yes&csrf={facts['csrf']}"
        return http(
            f"/r/{random.choice(links)}/claim",
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"vouch_csrf={facts['csrf_cookie']}",
            },
            body.encode(),
        )

    def conversion(i: int) -> bytes:
        variables = {
            "i": {
                "idempotencyKey": f"open-{run}-{i}",
                "redemptionCode": redemptions[i % len(redemptions)],
                "kind": "PURCHASE",
                "externalRef": f"open-{run}-{i}",
                "amountMinor": 1999,
                "currency": "USD",
            }
        }
        query = (
            "mutation($i: RecordConversionInput!) "
            "{ recordConversion(input: $i) { errors { code } } }"
        )
        return http(
            "/graphql",
            {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
            json.dumps({"query": query, "variables": variables}).encode(),
        )

    return {"claim": claim, "conversion": conversion}


async def seed(url: str, workdir: Path) -> dict[str, str]:
    claim_code = await prepare(url)  # migrate, empty, one program/advocate/link
    codec = LinkCodec(SALT, 10)
    engine = create_engine(url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE programs SET settings = '{}'"))
        # Two-sided rewards, as a real program has: the friend's credit when they sign up,
        # the advocate's cash when the referral is won (capped, so the cap is counted).
        await conn.execute(
            text(
                "INSERT INTO reward_rules (program_id, name, side, trigger, calc, kind,"
                " amount_minor, currency, percent_bps, points, from_nth_referral, cap_count,"
                " cap_period_days, clawback_days, holding_days, active, created_at)"
                " SELECT id, 'Friend credit', 'referred', 'signup', 'fixed', 'credit', 2000,"
                " 'USD', 0, 0, 1, NULL, 365, 60, 0, true, now() FROM programs"
                " UNION ALL"
                " SELECT id, 'Advocate cash', 'referrer', 'won', 'fixed', 'cash', 5000, 'USD',"
                " 0, 0, 1, 1000000, 365, 60, 0, true, now() FROM programs"
            )
        )
        program_id = await conn.scalar(text("SELECT program_id FROM referral_links LIMIT 1"))
        # A program's links and referrals spread over many advocates, as in life: one advocate
        # holding every referral would serialise all reward earning on that advocate's lock.
        first_advocate = await conn.scalar(
            text(
                "INSERT INTO advocates (external_id, email, email_normalized, first_name,"
                " last_name, is_icp, consent_referral, consent_marketing, opted_in_extra_asks,"
                " score, created_at, updated_at) SELECT 'bench-' || g, 'adv' || g ||"
                " '@example.com', 'adv' || g || '@example.com', 'Ada', 'Bench', false, true,"
                " false, false, 0, now(), now() FROM generate_series(1, :n) g"
                " RETURNING id"
            ),
            {"n": ADVOCATES},
        )
        rows = await conn.execute(
            text(
                "INSERT INTO referral_links (nonce, advocate_id, program_id, channel, status,"
                " created_at) SELECT (random() * 2000000000)::bigint, :a + g % :advocates, :p,"
                " 'c' || g, 'active', now() FROM generate_series(1, :n) g RETURNING id, nonce"
            ),
            {"a": first_advocate, "advocates": ADVOCATES, "p": program_id, "n": COLD_LINKS},
        )
        codes = [(link_id, codec.encode(link_id, nonce)) for link_id, nonce in rows]
        await conn.execute(
            text("UPDATE referral_links SET code = :c WHERE id = :i"),
            [{"c": c, "i": i} for i, c in codes],
        )
        await conn.execute(
            text(
                "INSERT INTO referrals (program_id, advocate_id, link_id, person_key, email,"
                " status, source, flags, moderation, consent, created_at, updated_at)"
                " SELECT :p, :a + g % :advocates, NULL, 'bench' || g || '@example.org', NULL,"
                " 'lead', 'api', '{}', 'clear', true, now(), now() FROM generate_series(1, :n) g"
            ),
            {"p": program_id, "a": first_advocate, "advocates": ADVOCATES, "n": REFERRALS},
        )
        await conn.execute(
            text(
                "INSERT INTO offer_redemptions (referral_id, program_id, code, issued_at)"
                " SELECT id, program_id, 'BENCH-' || id, now() FROM referrals"
            )
        )
        # Made a day ago (a charge may not predate its referral); the won ones with their deal.
        won_ids = await conn.scalars(
            text(
                "INSERT INTO referrals (program_id, advocate_id, link_id, person_key, email,"
                " status, source, flags, moderation, consent, created_at, updated_at)"
                " SELECT :p, :a + g % :advocates, NULL, 'won' || g || '@example.org', NULL,"
                " 'won', 'api', '{}', 'clear', true, now() - interval '1 day', now()"
                " FROM generate_series(1, :n) g RETURNING id"
            ),
            {"p": program_id, "a": first_advocate, "advocates": ADVOCATES, "n": WON},
        )
        won = sorted(won_ids)
        await conn.execute(
            text(
                "INSERT INTO opportunities (provider, crm_id, referral_id, program_id, kind,"
                " name, amount_minor, currency, stage, status, close_date, owner, created_at,"
                " updated_at) SELECT 'other', 'WON-' || r, r, :p, 'new_business', NULL,"
                " 120000, 'USD', 'Closed won', 'won', current_date, NULL, now(), now()"
                " FROM unnest(CAST(:ids AS bigint[])) AS r"
            ),
            {"p": program_id, "ids": won},
        )
        deal_ids = await conn.scalars(
            text(
                "INSERT INTO referrals (program_id, advocate_id, link_id, person_key, email,"
                " status, source, flags, moderation, consent, created_at, updated_at)"
                " SELECT :p, :a + g % :advocates, NULL, 'deal' || g || '@example.org', NULL,"
                " 'lead', 'api', '{}', 'clear', true, now() - interval '1 day', now()"
                " FROM generate_series(1, :n) g RETURNING id"
            ),
            {"p": program_id, "a": first_advocate, "advocates": ADVOCATES, "n": DEALS},
        )
        deals = sorted(deal_ids)
    await engine.dispose()
    from vouch.core.ids import encode_id

    for name, ids, encode in (
        ("revenue", [f"WON-{i}" for i in won], False),
        ("deals", deals, True),
    ):
        half = len(ids) // 2
        for suffix, part in (("", ids[:half]), ("-baseline", ids[half:])):
            (workdir / f"{name}{suffix}.txt").write_text(
                "\n".join(
                    encode_id("Referral", int(i)) if encode and not suffix else str(i) for i in part
                )
                + "\n"
            )
    (workdir / "cold.txt").write_text("\n".join(c for _, c in codes) + "\n")
    half = REFERRALS // 2
    (workdir / "redemptions.txt").write_text(
        "\n".join(f"BENCH-{i}" for i in range(1, half + 1)) + "\n"
    )
    (workdir / "redemptions-baseline.txt").write_text(
        "\n".join(f"BENCH-{i}" for i in range(half + 1, REFERRALS + 1)) + "\n"
    )
    cookie = secrets.token_hex(16)
    issued = f"{int(time.time()):x}"
    token = f"{issued}.{sign(SECRET, f'vouch.csrf.v1:{cookie}:{issued}'.encode())[:40]}"
    return {"claim_code": claim_code, "csrf_cookie": cookie, "csrf": token}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk's concurrent clients (issue 16: 64)"
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--open-loop", type=int, metavar="RATE", help="requests a second")
    parser.add_argument(
        "--only", help="run the scenarios whose name starts with this (implies --no-write)"
    )
    args = parser.parse_args()
    if args.only:
        args.no_write = True
    url = database_url()
    workdir = Path(tempfile.mkdtemp(prefix="vouch-bench-writes-"))
    facts = asyncio.run(seed(url, workdir))
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BENCH_ASYNCPG_DSN": dsn,
        "VOUCH_ENV": "production",
        "VOUCH_SECRET_KEY": SECRET,
        "VOUCH_HASHID_SALT": SALT,
        "VOUCH_CLAIM_RATE_LIMIT": "1000000000",
        "VOUCH_WEBHOOK_WORKER": "false",
        "PYTHONPATH": str(ROOT),
    }
    key = subprocess.run(
        [
            sys.executable,
            "-m",
            "vouch.cli.main",
            "apikey",
            "create",
            "--name",
            "bench",
            "--scope",
            "write",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env["BENCH_KEY"] = __import__("json").loads(key)["key"]
    vouch = Server("vouch.web.app:create_app", env)
    if args.open_loop:
        try:
            requests = open_loop_requests(workdir, facts, env["BENCH_KEY"])
            for name, build in requests.items():
                latencies, bad = asyncio.run(
                    open_loop(vouch.port, build, args.open_loop, args.seconds)
                )
                latencies.sort()
                p = [latencies[int(q * (len(latencies) - 1))] for q in (0.5, 0.99)]
                print(
                    f"{name}: {len(latencies):,} requests at {args.open_loop}/s for "
                    f"{args.seconds} s: p50 {p[0]:.1f} ms, p99 {p[1]:.1f} ms, max "
                    f"{latencies[-1]:.1f} ms, not 2xx/3xx {bad}",
                    flush=True,
                )
        finally:
            vouch.stop()
        return
    landing_baseline = Server("bench.landing_apps:baseline", env)
    write_baseline = Server("bench.write_apps:baseline", env)
    scenarios = {
        "cold landing (a different link per request)": (
            ("cold", "cold.txt", "0", vouch.url("/")),
            ("cold", "cold.txt", "1", landing_baseline.url("/")),
        ),
        "claim (CSRF-checked form, referral + decision + redemption)": (
            ("claim", "cold.txt", "0", vouch.url("/")),
            ("claim", "cold.txt", "1", write_baseline.url("/")),
        ),
        "conversion with idempotency key (GraphQL mutation)": (
            ("conversion", "redemptions.txt", "0", vouch.url("/")),
            ("conversion", "redemptions-baseline.txt", "1", write_baseline.url("/")),
        ),
        "revenue (GraphQL recordRevenue with idempotency key, a charge on a won referral's deal)": (
            ("revenue", "revenue.txt", "0", vouch.url("/")),
            ("revenue", "revenue-baseline.txt", "1", write_baseline.url("/")),
        ),
        "opportunity upsert (GraphQL, the CRM pushing a deal: created, stage moved, won)": (
            ("opportunity", "deals.txt", "0", vouch.url("/")),
            ("opportunity", "deals-baseline.txt", "1", write_baseline.url("/")),
        ),
    }
    if args.only:
        scenarios = {k: v for k, v in scenarios.items() if k.startswith(args.only)}
    results: dict[str, dict[str, list[float]]] = {
        name: {
            "vouch": [],
            "baseline": [],
            "ratio": [],
            "p99": [],
            "errors": [],
            "baseline errors": [],
        }
        for name in scenarios
    }
    try:
        for _ in range(args.rounds):
            for name, pair in scenarios.items():
                measured = []
                for mode, codes, is_baseline, base in pair:
                    os.environ.update(
                        BENCH_MODE=mode,
                        BENCH_CODES=str(workdir / codes),
                        BENCH_BASELINE=is_baseline,
                        BENCH_KEY=env["BENCH_KEY"],
                        BENCH_CLAIM_CODE=facts["claim_code"],
                        BENCH_CSRF=facts["csrf"],
                        BENCH_CSRF_COOKIE=facts["csrf_cookie"],
                    )
                    measured.append(wrk(base, args.seconds, args.connections))
                (v_rps, v_p99, _, v_bad), (b_rps, _, _, b_bad) = measured
                results[name]["errors"].append(v_bad)
                results[name]["baseline errors"].append(b_bad)
                results[name]["vouch"].append(v_rps)
                results[name]["baseline"].append(b_rps)
                results[name]["ratio"].append(v_rps / b_rps if b_rps else 0.0)
                results[name]["p99"].append(v_p99)
    finally:
        for server in (vouch, landing_baseline, write_baseline):
            server.stop()

    async def stored() -> tuple[int, ...]:
        engine = create_engine(url, pool_size=1)
        async with engine.connect() as conn:
            counts = await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM referrals WHERE source <> 'api'),"
                    " (SELECT count(*) FROM conversions), (SELECT count(*) FROM revenue_events),"
                    " (SELECT count(*) FROM opportunities WHERE crm_id LIKE 'D%'),"
                    " (SELECT count(*) FROM opportunity_events)"
                )
            )
            row = counts.one()
        await engine.dispose()
        return tuple(int(v or 0) for v in row)

    claims_stored, conversions_stored, charges, deals, moves = asyncio.run(stored())

    def s(values: list[float], fmt: str = "{:,.0f}") -> str:
        return " / ".join(
            fmt.format(v) for v in (min(values), statistics.median(values), max(values))
        )

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    lines = [
        "## Write path and cold cache — bench/writes.py",
        "",
        f"Run {when} · commit `{commit}` · {os.cpu_count()} CPUs · "
        f"wrk `-t1 -c{args.connections} -d{args.seconds}s`, {args.rounds} interleaved rounds, "
        "one uvicorn worker per app, 127.0.0.1 only. Baselines: "
        "hand-written Starlette + asyncpg handlers doing the same database work "
        "(`bench/write_apps.py`, `bench/landing_apps.py`). min / median / max.",
        "",
        "| scenario | Vouch req/s | baseline req/s | Vouch ÷ baseline | Vouch p99 ms "
        "| failed (not 2xx/3xx, or an error in the body): Vouch / baseline |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {s(r['vouch'])} | {s(r['baseline'])} | {s(r['ratio'], '{:.2f}')} | "
            f"{s(r['p99'], '{:.1f}')} | {sum(r['errors']):.0f} / {sum(r['baseline errors']):.0f} |"
        )
    lines += [
        "",
        f"Rows written (Vouch and baseline together): {claims_stored:,} claimed referrals, "
        f"{conversions_stored:,} conversions, {charges:,} charges, {deals:,} deals with "
        f"{moves:,} stage moves. Failed requests, by side, in the last column: answers "
        "that are not 2xx/3xx, and 200s whose body carries an error (a GraphQL error, a "
        "payload's errors), counted by bench/writes.lua. "
        "Full parity (issue 16): each baseline does the database work Vouch does for the "
        "same request (fraud velocity counts, rollup, outbox with deliveries, lifecycle "
        "event, two-sided rewards with ladder and cap counts, idempotency key), listed in "
        "`bench/write_apps.py`'s docstring. The program has 1,000 advocates, a friend "
        "credit on signup and a capped advocate reward on won.",
    ]
    block = "\n".join(lines) + "\n"
    print(block)
    if not args.no_write:
        from bench.run import RESULTS, replace_block

        RESULTS.write_text(replace_block(RESULTS.read_text(), "writes", block))


if __name__ == "__main__":
    main()
