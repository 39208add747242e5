"""Bulk paths at 100,000 rows (issue 16: each in <= 30 s): the CLI imports of advocates and
signals from CSV files, and the GraphQL bulk mutations (importAdvocates in calls of 1,000,
importSignals in calls of 3,000 CSV rows, under the 256 KiB body limit), timed end to end on an
empty database.

    .venv/bin/python -m bench.imports [--rows 100000]

Uses DATABASE_URL if set, else the embedded PostgreSQL in .vouch/bench (database
vouch_bench_imports, emptied first). The CLI runs as a subprocess, as an operator runs it; the
GraphQL calls go in-process through httpx's ASGI transport (client and server share one CPU, so
the figure is conservative). Prints a Markdown table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from vouch.core.engine import create_engine  # noqa: E402
from vouch.core.migrations import alembic_config  # noqa: E402
from vouch.models import Base  # noqa: E402

SECRET = "bench-imports-secret-" + "x" * 24


def database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from vouch.core.embedded import start_embedded

    return start_embedded(ROOT / ".vouch" / "bench", database="vouch_bench_imports")


async def empty(url: str) -> None:
    from alembic import command

    await asyncio.to_thread(command.upgrade, alembic_config(url), "heads")
    engine = create_engine(url, pool_size=1)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


def advocates_csv(rows: int, prefix: str) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["external_id", "email", "first_name", "last_name", "account_id", "account_name"])
    for i in range(rows):
        w.writerow([f"{prefix}{i}", f"p{i}@example{i % 97}.com", "Ada", "L", f"a{i % 5000}", "A"])
    return out.getvalue()


def signals_csv(rows: int, prefix: str, advocates: int) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["advocate_external_id", "kind", "occurred_at", "value", "source", "external_id"])
    for i in range(rows):
        day = 1 + i % 28
        w.writerow(
            [
                f"{prefix}{i % advocates}",
                "nps",
                f"2026-11-{day:02d}T10:00:00Z",
                i % 11,
                "x",
                f"s{i}",
            ]
        )
    return out.getvalue()


def cli(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "vouch.cli.main", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started


async def graphql(url: str, rows: int) -> tuple[float, float]:
    import httpx

    from vouch.access.api_keys import create_api_key
    from vouch.core.sessions import session_factory
    from vouch.core.settings import get_settings
    from vouch.models.enums import Scope
    from vouch.web.app import create_app

    get_settings.cache_clear()
    engine = create_engine(url, pool_size=1)
    async with session_factory(engine)() as s:
        key = (await create_api_key(s, name="bench", scopes=[Scope.WRITE])).plaintext
        await s.commit()
    await engine.dispose()
    app = create_app()
    headers = {"authorization": f"Bearer {key}"}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000", timeout=600) as c,
    ):
        started = time.perf_counter()
        for offset in range(0, rows, 1_000):
            batch = [
                {"externalId": f"g{i}", "email": f"g{i}@example.com", "firstName": "Ada"}
                for i in range(offset, min(offset + 1_000, rows))
            ]
            r = await c.post(
                "/graphql",
                json={
                    "query": "mutation($a: [AdvocateInput!]!) { importAdvocates(advocates: $a)"
                    " { createdCount errors { message } } }",
                    "variables": {"a": batch},
                },
                headers=headers,
            )
            assert r.status_code == 200, r.text[:300]
            assert "errors" not in r.json(), r.text[:300]
        advocates = time.perf_counter() - started
        content = signals_csv(rows, "g", rows).splitlines()
        started = time.perf_counter()
        for offset in range(1, len(content), 3_000):
            chunk = "\n".join([content[0], *content[offset : offset + 3_000]])
            r = await c.post(
                "/graphql",
                json={
                    "query": "mutation($c: String!) { importSignals(format: CSV, content: $c)"
                    " { created rowErrors { message } } }",
                    "variables": {"c": chunk},
                },
                headers=headers,
            )
            assert r.status_code == 200, r.text[:300]
            assert "errors" not in r.json(), r.text[:300]
        signals = time.perf_counter() - started
    return advocates, signals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    url = database_url()
    asyncio.run(empty(url))
    workdir = Path(tempfile.mkdtemp(prefix="vouch-bench-imports-"))
    (workdir / "advocates.csv").write_text(advocates_csv(args.rows, "crm-"))
    (workdir / "signals.csv").write_text(signals_csv(args.rows, "crm-", args.rows))
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "VOUCH_SECRET_KEY": SECRET,
        "VOUCH_HASHID_SALT": "bench-imports-salt",
        "VOUCH_WEBHOOK_WORKER": "false",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith(("DATABASE", "VOUCH"))})
    os.environ["VOUCH_PUBLIC_BASE_URL"] = "http://127.0.0.1:8000"
    figures = [
        (
            "`vouch import advocates` (new)",
            cli(env, "import", "advocates", str(workdir / "advocates.csv")),
        ),
        (
            "`vouch import advocates` (all exist: updates)",
            cli(env, "import", "advocates", str(workdir / "advocates.csv")),
        ),
        (
            "`vouch import signals` (new)",
            cli(env, "import", "signals", str(workdir / "signals.csv")),
        ),
        (
            "`vouch import signals` (again: all duplicates)",
            cli(env, "import", "signals", str(workdir / "signals.csv")),
        ),
    ]
    advocates, signals = asyncio.run(graphql(url, args.rows))
    figures += [
        ("GraphQL importAdvocates, calls of 1,000", advocates),
        ("GraphQL importSignals, calls of 3,000 CSV rows", signals),
    ]
    print(f"| path ({args.rows:,} rows) | seconds | rows/s |\n| --- | --- | --- |")
    for name, seconds in figures:
        print(f"| {name} | {seconds:.1f} | {args.rows / seconds:,.0f} |")


if __name__ == "__main__":
    main()
