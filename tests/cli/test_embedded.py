"""The embedded default end to end: `vouch serve` starts PostgreSQL in the data directory,
other commands on the same directory join it, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "VOUCH_"))}
    env["VOUCH_DATA_DIR"] = str(data_dir)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postmasters(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if proc.info.get("name") == "postgres" and str(data_dir.resolve()) in cmdline:
            found.append(proc)
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_shares_its_database_and_stops_cleanly(tmp_path: Path, stop_signal: int) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "vouch.cli.main", "serve", "--port", str(port)],
        cwd=ROOT,
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert serve.poll() is None, serve.stderr.read() if serve.stderr else ""
            assert time.monotonic() < deadline, "vouch serve did not become ready"
            time.sleep(0.3)
        assert len(_postmasters(data_dir)) == 1

        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "vouch.cli.main",
                "apikey",
                "create",
                "--name",
                "n",
                "--scope",
                "read",
                "--json",
            ],
            cwd=ROOT,
            env=_env(data_dir),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)["key"]
        # Still one server: the second command joined it rather than starting another.
        assert len(_postmasters(data_dir)) == 1
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ programs { totalCount } }"},
            headers={"authorization": f"Bearer {key}"},
            timeout=5,
        )
        assert response.json() == {"data": {"programs": {"totalCount": 0}}}
    finally:
        serve.send_signal(stop_signal)
        serve.wait(timeout=30)
    assert serve.returncode == 0
    deadline = time.monotonic() + 15
    while _postmasters(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _postmasters(data_dir) == []
