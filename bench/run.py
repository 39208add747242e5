"""One command for every figure: ``python -m bench.run [--quick]``.

Orchestrates the existing benchmark scripts (each measures Vouch against its baseline in the
same run and reports min/median/max over three runs), the enumeration bench, and the measured
figures of the fault and hostile-input tests, then rewrites ``bench/RESULTS.md``: a header with
date, machine and commit, and one marked block per script with its own output. Every step is
bounded by a timeout; a step that fails or times out is recorded as such, not hidden.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
PY = sys.executable


def steps(quick: bool) -> list[tuple[str, str, list[str], int]]:
    """(block name, title, command, timeout seconds)."""
    secs = "2" if quick else "5"
    return [
        (
            "landing",
            "",  # bench/landing.py writes its own block
            [PY, "-m", "bench.landing", "--seconds", secs, "--rounds", "3"],
            900,
        ),
        (
            "writes",
            "",  # bench/writes.py writes its own block: cold landing, claim, conversion
            [PY, "-m", "bench.writes", "--seconds", secs, "--rounds", "3"],
            900,
        ),
        (
            "graphql",
            "GraphQL (pages of 50 with nesting, the widget query; each against bare strawberry)"
            " — bench/graphql.py",
            [PY, "-m", "bench.graphql", "--duration", secs, "--runs", "5"],
            900,
        ),
        (
            "attribution",
            "Attribution at scale (load, rollup rebuild, reports) — bench/attribution_scale.py",
            [
                PY,
                "-m",
                "bench.attribution_scale",
                "--clicks",
                "200000" if quick else "10000000",
                "--referrals",
                "20000" if quick else "1000000",
                "--advocates",
                "2000" if quick else "100000",
                "--runs",
                "20" if quick else "200",
            ],
            600 if quick else 3600,
        ),
        (
            "imports",
            "Bulk paths (CLI imports and GraphQL bulk mutations) — bench/imports.py",
            [PY, "-m", "bench.imports", "--rows", "20000" if quick else "100000"],
            900,
        ),
        (
            "advocacy",
            "Advocacy engine at scale — bench/advocacy_scale.py",
            [PY, "-m", "bench.advocacy_scale"],
            600,
        ),
        (
            "enumeration",
            "Enumeration of link codes — bench/enumeration.py",
            [PY, "-m", "bench.enumeration", "--guesses", "200000" if quick else "1000000"],
            900,
        ),
        (
            "reliability",
            "Faults and hostile input (figures printed by the tests) — tests/faults, tests/hostile",
            [
                PY,
                "-m",
                "pytest",
                "-s",
                "-rf",
                "-p",
                "no:cacheprovider",
                "tests/faults",
                "tests/hostile/test_fraud_corpus.py",
                "tests/hostile/test_schemathesis.py",
            ],
            900,
        ),
    ]


def machine() -> str:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        mem = "unknown"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · commit `{commit}` · "
        f"`{' '.join(platform.uname())}` · {os.cpu_count()} CPUs · {mem} RAM · "
        f"Python {platform.python_version()}"
    )


_FIGURE = re.compile(
    r"^(outage:|worker SIGKILL:|fraud corpus:|schemathesis:|FAILED|\d+ (passed|failed)|\|)"
)


def run_step(command: list[str], timeout: int) -> tuple[str, float, str]:
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        status = "ok" if done.returncode == 0 else f"exit code {done.returncode}"
        output = done.stdout
    except subprocess.TimeoutExpired as exc:
        status = f"timed out after {timeout} s"
        output = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    return status, time.monotonic() - started, output


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        return text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    return text.rstrip() + "\n\n" + block + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, smaller data sets")
    parser.add_argument("--only", nargs="*", help="block names to run (default: all)")
    args = parser.parse_args()
    header = machine()
    for name, title, command, timeout in steps(args.quick):
        if args.only and name not in args.only:
            continue
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        status, seconds, output = run_step(command, timeout)
        print(f"   {status} in {seconds:.0f} s", flush=True)
        if not title:
            continue  # the script maintains its own block
        lines = output.splitlines()
        if name == "reliability":
            lines = [line for line in lines if _FIGURE.match(line.strip())]
        body = "\n".join(
            [
                f"## {title}",
                "",
                f"{header}. Step {status} in {seconds:.0f} s. Command: "
                f"`{' '.join(['python', *command[1:]])}`",
                "",
                "```" if name in {"attribution", "advocacy", "reliability"} else "",
                *lines,
                "```" if name in {"attribution", "advocacy", "reliability"} else "",
            ]
        )
        RESULTS.write_text(replace_block(RESULTS.read_text(), name, body))
    text = RESULTS.read_text()
    ran = " ".join(args.only) if args.only else "all blocks"
    intro = (
        "# Benchmark results\n\nWritten by `python -m bench.run`; each block names its own run"
        f" and command. Last run: {ran}, {'quick' if args.quick else 'full'} mode. {header}.\n"
    )
    text = re.sub(r"^# Benchmark results\n(\nWritten by[^\n]*\n)?", intro, text, count=1)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
