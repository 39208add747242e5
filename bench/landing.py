"""Landing-page benchmark: ``GET /r/{code}`` against a hand-written Starlette + asyncpg baseline,
and unknown codes against a bare hello-world, each app on one uvicorn worker, with wrk on
127.0.0.1. Three interleaved rounds; ratios reported as min/median/max. Then an open-loop
client at a steady 1,000 requests/s for p50/p99 latency. Results go to bench/RESULTS.md.

    .venv/bin/python bench/landing.py [--seconds 5] [--rounds 3] [--no-write]

Uses DATABASE_URL if set, else an embedded PostgreSQL in .vouch/bench. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from tests.factories import make_advocate, make_link, make_program  # noqa: E402
from vouch.core.codes import LinkCodec  # noqa: E402
from vouch.core.engine import create_engine  # noqa: E402
from vouch.core.migrations import alembic_config  # noqa: E402
from vouch.core.sessions import session_factory  # noqa: E402
from vouch.models import Base, Click  # noqa: E402

WRK = "/usr/bin/wrk"
UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
SALT = "bench-hashid-salt-0123456789-abcdefghijklmnop"
START, END = "<!-- landing:start -->", "<!-- landing:end -->"


def database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from vouch.core.embedded import start_embedded

    return start_embedded(ROOT / ".vouch" / "bench", database="vouch_bench")


async def prepare(url: str) -> str:
    from alembic import command

    await asyncio.to_thread(command.upgrade, alembic_config(url), "heads")
    engine = create_engine(url, pool_size=1)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    codec = LinkCodec(SALT, 10)
    async with session_factory(engine)() as s:
        program = await make_program(
            s,
            name="Acme Analytics",
            offer_title="20% off your first year",
            offer_terms="New customers only.",
        )
        advocate = await make_advocate(s, first_name="Grace", email="grace@example.com")
        link = await make_link(s, codec, advocate=advocate, program=program)
        await s.commit()
        code = str(link.code)
    await engine.dispose()
    return code


async def count_clicks(url: str, *, baseline: bool) -> int:
    engine = create_engine(url, pool_size=1)
    marker = Click.visitor_id == "1" * 32
    async with engine.connect() as conn:
        n = await conn.scalar(select(func.count(Click.id)).where(marker if baseline else ~marker))
    await engine.dispose()
    return int(n or 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, factory: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                factory if ":" in factory else f"bench.landing_apps:{factory}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{factory} did not start") from None
                time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()  # SIGTERM: uvicorn runs the lifespan shutdown (final click flush)
        self.proc.wait(timeout=20)


def wrk(url: str, seconds: int, script: str | None = None) -> tuple[float, float, int]:
    """(requests/s, p99 ms, total requests) from one wrk run."""
    extra = ["-s", str(ROOT / "bench" / script)] if script else []
    out = subprocess.run(
        [WRK, "-t1", "-c32", f"-d{seconds}s", "--latency", "-H", f"User-Agent: {UA}", *extra, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    value, unit = float(p99.group(1)), p99.group(2)
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return rps, p99_ms, total


async def open_loop(
    port: int, build: Callable[[int], bytes], rate: int, seconds: float, conns: int = 64
) -> tuple[list[float], int]:
    """Requests ``build(i)`` sent on a fixed schedule of ``rate`` a second over ``conns``
    keep-alive connections; (latencies in ms from each scheduled instant, answers not 2xx/3xx).
    A request waits for a free connection in the queue, and that wait counts."""
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    bad = 0

    async def worker() -> None:
        nonlocal bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            i, scheduled = item
            writer.write(build(i))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - scheduled) * 1000)
            bad += not 200 <= status < 400
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(conns)]
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, bad


async def open_loop_get(
    port: int, path: str, rate: int, seconds: float, conns: int = 48
) -> list[float]:
    """GET ``path`` on ``open_loop``'s fixed schedule; the latencies."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {UA}\r\n\r\n".encode()
    latencies, _ = await open_loop(port, lambda _: request, rate, seconds, conns)
    return latencies


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    url = database_url()
    code = asyncio.run(prepare(url))
    from sqlalchemy.engine import make_url

    plain = make_url(url.replace("postgresql+asyncpg", "postgresql")).set(drivername="postgresql")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BENCH_ASYNCPG_DSN": plain.render_as_string(hide_password=False),
        "VOUCH_ENV": "production",
        "VOUCH_SECRET_KEY": SECRET,
        "VOUCH_HASHID_SALT": SALT,
        # Standard Webhooks format (whsec_ + base64 of 32 bytes), as production requires
        "VOUCH_INBOUND_WEBHOOK_SECRET": "whsec_" + base64.b64encode(bytes(range(7, 39))).decode(),
        "VOUCH_DATA_DIR": str(ROOT / ".vouch" / "bench"),
        "PYTHONPATH": str(ROOT),
    }
    unknown = "zzzzzzzzzz"  # well-formed alphabet, not a canonical code: rejected before any I/O
    servers: dict[str, Server] = {}
    keys = ("baseline", "vouch", "hello", "unknown", "random")
    rows: dict[str, list[tuple[float, float, int]]] = {k: [] for k in keys}
    try:
        for name in ("vouch", "baseline", "hello"):
            servers[name] = Server(name, env)
        for n in range(args.rounds):
            print(f"round {n + 1}/{args.rounds}")
            rows["baseline"].append(wrk(servers["baseline"].url(f"/r/{code}"), args.seconds))
            rows["vouch"].append(wrk(servers["vouch"].url(f"/r/{code}"), args.seconds))
            rows["hello"].append(wrk(servers["hello"].url("/hello"), args.seconds))
            rows["unknown"].append(wrk(servers["vouch"].url(f"/r/{unknown}"), args.seconds))
            rows["random"].append(
                wrk(servers["vouch"].url("/r/x"), args.seconds, script="random_codes.lua")
            )
            for k, v in rows.items():
                print(f"  {k:9s} {v[-1][0]:9.0f} req/s  p99 {v[-1][1]:6.2f} ms")
        steady, control = [], []
        for _ in range(args.rounds):  # interleaved with the same load on hello-world, a control
            steady.append(
                asyncio.run(open_loop_get(servers["vouch"].port, f"/r/{code}", 1000, args.seconds))
            )
            control.append(
                asyncio.run(open_loop_get(servers["hello"].port, "/hello", 1000, args.seconds))
            )
    finally:
        for server in servers.values():
            server.stop()
    landing_ratio = [v[0] / b[0] for v, b in zip(rows["vouch"], rows["baseline"], strict=True)]
    unknown_ratio = [u[0] / h[0] for u, h in zip(rows["unknown"], rows["hello"], strict=True)]
    random_ratio = [u[0] / h[0] for u, h in zip(rows["random"], rows["hello"], strict=True)]

    def percentiles(runs: list[list[float]]) -> tuple[list[float], list[float]]:
        p50, p99 = [], []
        for latencies in runs:
            latencies.sort()
            p50.append(latencies[len(latencies) // 2])
            p99.append(latencies[int(len(latencies) * 0.99) - 1])
        return p50, p99

    p50s, p99s_steady = percentiles(steady)
    control_p50, control_p99 = percentiles(control)
    recorded = asyncio.run(count_clicks(url, baseline=False))
    sent = sum(r[2] for r in rows["vouch"]) + sum(len(x) for x in steady)
    p99s = spread([r[1] for r in rows["vouch"]])

    def rps(key: str) -> str:
        return spread([r[0] for r in rows[key]])

    cpu = platform.processor() or platform.machine()
    machine = (
        f"{platform.node()} · {os.cpu_count()} CPU ({cpu}) · Python {platform.python_version()}"
        f" · {platform.system()} {platform.release()}"
    )
    report = f"""{START}
## Landing page (`GET /r/{{code}}`) — bench/landing.py

Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}; 1-minute load average
{load_before:.2f} before and {os.getloadavg()[0]:.2f} after the run (other work on the machine
competes for the same two cores, so absolute numbers are noisy; the ratios pair runs that
were made back to back).
One uvicorn worker per app; wrk `-t1 -c32 -d{args.seconds}s` with a browser User-Agent, all on
127.0.0.1 (wrk, the app and PostgreSQL share the machine's cores). {args.rounds} interleaved rounds;
min / median / max.

| measurement | req/s (min / median / max) |
| --- | --- |
| baseline: Starlette + asyncpg, decode + INSERT click + render | {rps("baseline")} |
| Vouch `GET /r/{{code}}` (cached resolve, buffered click, cookies, render) | {rps("vouch")} |
| bare Starlette hello-world | {rps("hello")} |
| Vouch unknown code (`/r/zzzzzzzzzz`, rejected before any I/O) | {rps("unknown")} |
| Vouch random unknown codes (a new code per request: no memo helps) | {rps("random")} |

| ratio | min / median / max | target |
| --- | --- | --- |
| Vouch landing ÷ baseline | {spread(landing_ratio)} | ≥ 0.60 |
| Vouch unknown code ÷ hello-world | {spread(unknown_ratio)} | ≥ 0.50 |
| Vouch random unknown codes ÷ hello-world | {spread(random_ratio)} | (≥ 0.50) |

Open-loop client at a steady 1,000 requests/s, {args.rounds} runs of {args.seconds} s against
`GET /r/{{code}}` (latency from the scheduled send time, so queueing is not hidden):
p50 {spread(p50s)} ms, **p99 {spread(p99s_steady)} ms** (min / median / max; target p99 ≤ 15 ms).
Control, the same client against the bare hello-world right after each run:
p50 {spread(control_p50)} ms, p99 {spread(control_p99)} ms. Where the control's p99 is high too,
the tail comes from the machine (the client, the server and PostgreSQL share two cores with
other work), not from the landing handler.
Under wrk's saturating closed loop (32 connections), Vouch's p99 was {p99s} ms (min/median/max).

Clicks: {sent} landing requests sent to Vouch, {recorded} click rows written by its buffer
(the difference, if any, is what the bounded buffer dropped or what wrk counted but cut off).
{END}"""
    print(report)
    if not args.no_write:
        path = ROOT / "bench" / "RESULTS.md"
        current = path.read_text() if path.exists() else "# Benchmark results\n"
        if START in current:
            current = (
                current[: current.index(START)] + report + current[current.index(END) + len(END) :]
            )
        else:
            current = current.rstrip() + "\n\n" + report + "\n"
        path.write_text(current)


if __name__ == "__main__":
    main()
