"""Where a write's time goes: CPU per request and a cProfile of claims, conversions or cold
landings (a link not in the landing cache) served in-process (the ASGI app called directly
through httpx, no sockets, one request at a time). ``revenue``: a keyed recurring charge on a
won referral's deal; ``opportunity``: keyed deal upserts, each deal created, moved, won.

    .venv/bin/python -m bench.write_profile [--requests 400] [--top 40]
        [--mode conversion|claim|cold|revenue|opportunity] [--statements] [--no-profile]

Uses DATABASE_URL if set, else the embedded PostgreSQL in .vouch/bench (shared with
bench/writes.py, whose seed it reuses). Nothing is asserted: it prints CPU ms per request and
the profile's top entries by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.landing import SALT, SECRET, UA, database_url  # noqa: E402
from bench.writes import seed  # noqa: E402


def _environment(url: str) -> None:
    os.environ.update(
        DATABASE_URL=url,
        VOUCH_ENV="production",
        VOUCH_SECRET_KEY=SECRET,
        VOUCH_HASHID_SALT=SALT,
        VOUCH_CLAIM_RATE_LIMIT="1000000000",
        VOUCH_WEBHOOK_WORKER="false",
        VOUCH_PUBLIC_URL="http://127.0.0.1:8000",
    )


async def run(
    mode: str, requests: int, top: int, show_statements: bool, profile: bool = True
) -> None:
    import httpx

    from vouch.access.api_keys import create_api_key
    from vouch.core.settings import get_settings
    from vouch.models.enums import Scope
    from vouch.web.app import create_app

    url = database_url()
    workdir = Path(tempfile.mkdtemp(prefix="vouch-bench-profile-"))
    facts = await seed(url, workdir)
    _environment(url)
    get_settings.cache_clear()
    app = create_app()
    codes = (workdir / "redemptions.txt").read_text().split()
    links = (workdir / "cold.txt").read_text().split()
    won_deals = (workdir / "revenue.txt").read_text().split()
    lead_referrals = (workdir / "deals.txt").read_text().split()
    async with app.router.lifespan_context(app):
        from vouch.core.engine import create_engine
        from vouch.core.sessions import session_factory

        engine = create_engine(url, pool_size=1)
        async with session_factory(engine)() as s:
            created = await create_api_key(s, name="profile", scopes=[Scope.WRITE])
            await s.commit()
            key = created.plaintext
        await engine.dispose()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8000", headers={"User-Agent": UA}
        ) as client:
            counter = 0

            async def one() -> None:
                nonlocal counter
                counter += 1
                if mode == "cold":
                    response = await client.get(f"/r/{links[counter % len(links)]}")
                    assert response.status_code == 200, response.text[:300]
                elif mode == "claim":
                    response = await client.post(
                        f"/r/{links[counter % len(links)]}/claim",
                        data={
                            "email": f"friend{counter}@example.org",
                            "consent": "yes",
                            "csrf": facts["csrf"],
                        },
                        cookies={"vouch_csrf": facts["csrf_cookie"]},
                    )
                    assert response.status_code in (200, 303), response.text[:300]
                elif mode == "revenue":
                    response = await client.post(
                        "/graphql",
                        json={
                            "query": "mutation($i: RecordRevenueInput!, $k: String) {"
                            " recordRevenue(input: $i, idempotencyKey: $k) { created"
                            " errors { code } } }",
                            "variables": {
                                "k": f"k{counter}",
                                "i": {
                                    "externalId": f"in{counter}",
                                    "kind": "recurring",
                                    "amountMinor": 9900,
                                    "currency": "USD",
                                    "occurredAt": datetime.now(UTC).isoformat(),
                                    "opportunityCrmId": won_deals[counter % len(won_deals)],
                                },
                            },
                        },
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    assert response.status_code == 200, response.text[:300]
                    payload = response.json()["data"]["recordRevenue"]
                    assert payload["errors"] == [], response.text
                    assert payload["created"], response.text
                elif mode == "opportunity":
                    deal, step = divmod(counter - 1, 3)
                    stage, status = (("Demo", "open"), ("Proposal", "open"), ("Won", "won"))[step]
                    response = await client.post(
                        "/graphql",
                        json={
                            "query": "mutation($i: UpsertOpportunityInput!, $k: String) {"
                            " upsertOpportunity(input: $i, idempotencyKey: $k) { created"
                            " errors { code } } }",
                            "variables": {
                                "k": f"k{counter}",
                                "i": {
                                    "crmId": f"D{deal}",
                                    "stage": stage,
                                    "status": status,
                                    "amountMinor": 250000,
                                    "currency": "USD",
                                    "referralId": lead_referrals[deal % len(lead_referrals)],
                                },
                            },
                        },
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    assert response.status_code == 200, response.text[:300]
                    payload = response.json()["data"]["upsertOpportunity"]
                    assert payload["errors"] == [], response.text
                else:
                    response = await client.post(
                        "/graphql",
                        json={
                            "query": "mutation($i: RecordConversionInput!) { recordConversion("
                            "input: $i) { errors { code } } }",
                            "variables": {
                                "i": {
                                    "idempotencyKey": f"k{counter}",
                                    "redemptionCode": codes[counter % len(codes)],
                                    "kind": "PURCHASE",
                                    "externalRef": f"r{counter}",
                                    "amountMinor": 1999,
                                    "currency": "USD",
                                }
                            },
                        },
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    assert response.status_code == 200, response.text[:300]
                    payload = response.json()["data"]["recordConversion"]
                    assert payload["errors"] == [], response.text

            for _ in range(50):
                await one()
            if show_statements:
                from sqlalchemy import event
                from sqlalchemy.engine import Engine

                seen: list[str] = []

                def record(*args: object) -> None:
                    seen.append(" ".join(str(args[2]).split()))

                event.listen(Engine, "before_cursor_execute", record)
                await one()
                event.remove(Engine, "before_cursor_execute", record)
                print(f"{mode}: {len(seen)} statements")
                for statement in seen:
                    print("  ", statement)
            started_cpu, started = time.process_time(), time.perf_counter()
            profiler = cProfile.Profile()
            if profile:
                profiler.enable()
            for _ in range(requests):
                await one()
            profiler.disable()
            cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    print(
        f"{mode}: {requests} requests, CPU {cpu / requests * 1000:.2f} ms/request"
        f" (wall {wall / requests * 1000:.2f} ms{', under cProfile' if profile else ''})"
    )
    if not profile:
        return
    profiler.dump_stats(str(Path(tempfile.gettempdir()) / f"vouch-{mode}.prof"))
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--mode",
        choices=["conversion", "claim", "cold", "revenue", "opportunity"],
        default="conversion",
    )
    parser.add_argument("--statements", action="store_true", help="print one request's SQL")
    parser.add_argument(
        "--no-profile", action="store_true", help="CPU per request only, without cProfile"
    )
    args = parser.parse_args()
    asyncio.run(run(args.mode, args.requests, args.top, args.statements, not args.no_profile))


if __name__ == "__main__":
    main()
