"""Vouch behind PgBouncer in transaction mode (Debian's pgbouncer 1.18: no prepared-statement
support): migrations, the demo, GraphQL reads, landing clicks, idempotent conversions under
concurrency and every scheduled job, all through the pooler, with nothing lost or doubled.

Without the ``pgbouncer`` binary these tests are skipped LOUDLY (``apt-get install pgbouncer``),
unless ``VOUCH_REQUIRE_PGBOUNCER=1`` (set by CI), in which case they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import PrivatePostgres, VouchProcess, free_port
from tests.faults.traffic import Seed, Traffic
from vouch.jobs.definitions import JOBS

INSTALL_HINT = (
    "pgbouncer is not installed: the PgBouncer tests are SKIPPED. "
    "Install Debian's package (apt-get install pgbouncer); CI does."
)


def _binary() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if found:
        return found
    if os.environ.get("VOUCH_REQUIRE_PGBOUNCER") == "1":
        pytest.fail("VOUCH_REQUIRE_PGBOUNCER=1 but " + INSTALL_HINT, pytrace=False)
    warnings.warn(INSTALL_HINT, stacklevel=1)
    print("\n" + "!" * 100 + "\n" + INSTALL_HINT + "\n" + "!" * 100)  # noqa: T201
    pytest.skip(INSTALL_HINT)


class PgBouncer:
    def __init__(self, binary: str, pg: PrivatePostgres, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        socket_dir = pg.server.get_postmaster_info().socket_dir
        self.ini = directory / "pgbouncer.ini"
        self.log = directory / "pgbouncer.log"
        self.ini.write_text(
            "[databases]\n"
            f"vouch = host={socket_dir} dbname=vouch user=postgres\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = any\n"
            "pool_mode = transaction\n"
            "default_pool_size = 8\n"
            "max_client_conn = 400\n"
            f"logfile = {self.log}\n"
            f"pidfile = {directory / 'pgbouncer.pid'}\n"
        )
        command = [binary, str(self.ini)]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            command[1:1] = ["-u", "embedded_postgres"]
            shutil.chown(directory, "embedded_postgres")
            shutil.chown(self.ini, "embedded_postgres")
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                pg_ok = subprocess.run(
                    [str(pg.bin_dir / "psql"), self.url, "-Atc", "SELECT 1"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=False,
                )
                if pg_ok.stdout.strip() == "1":
                    return
            except subprocess.TimeoutExpired:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(self.proc.stderr.read() if self.proc.stderr else "")
            time.sleep(0.2)
        raise AssertionError("pgbouncer did not answer")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/vouch"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def bounced(fault_dir: Path) -> Iterator[tuple[PrivatePostgres, PgBouncer, VouchProcess]]:
    binary = _binary()
    pg = PrivatePostgres(fault_dir / "pg")
    bouncer_dir = fault_dir / "pgbouncer"
    bouncer_dir.mkdir()
    bouncer = PgBouncer(binary, pg, bouncer_dir)
    vouch = VouchProcess(
        database_url=bouncer.url,
        data_dir=fault_dir / "data",
        workers=2,
        extra_env={
            "VOUCH_DB_PGBOUNCER": "true",
            "DATABASE_LISTEN_URL": pg.url,  # LISTEN needs a session: PostgreSQL itself
            "VOUCH_JOB_SCHEDULES": ";".join(f"{job.name}=* * * * * *" for job in JOBS),
        },
    )
    try:
        vouch.cli("migrate")  # through the pooler too
        vouch.start()
        yield pg, bouncer, vouch
    finally:
        vouch.stop()
        bouncer.stop()


def test_vouch_runs_behind_pgbouncer_in_transaction_mode(bounced):
    pg, bouncer, vouch = bounced
    seed = Seed.create(pg, vouch)
    load = Traffic(vouch.base, seed)
    clicks_before = load.clicks_for_link(pg)
    reads: list[tuple[int, bool]] = []
    stop = threading.Event()
    query = {"query": "{ programs { totalCount edges { node { id name } } } }"}

    def graphql() -> None:
        with httpx.Client(base_url=vouch.base, timeout=30) as client:
            while not stop.is_set():
                r = client.post(
                    "/graphql", json=query, headers={"authorization": f"Bearer {seed.key}"}
                )
                reads.append((r.status_code, "errors" in r.json()))

    readers = [threading.Thread(target=graphql) for _ in range(3)]
    load.start(landing_threads=2, conversion_threads=3)
    for reader in readers:
        reader.start()
    time.sleep(6)
    stop.set()
    for reader in readers:
        reader.join(timeout=30)
    load.finish()

    assert reads
    assert set(reads) == {(200, False)}, {r for r in reads if r != (200, False)}
    assert {e.status for e in load.landing} == {200}
    assert {e.status for e in load.conversions} == {200}
    load.retry_pending()
    load.check_ledger(pg)  # every acknowledged conversion stored exactly once
    assert load.sent > 20
    assert load.settled_clicks(pg) - clicks_before == load.landing_ok

    # Every scheduled job ran through the pooler, once per due time.
    runs = pg.query("SELECT job, outcome, count(*) FROM job_runs GROUP BY job, outcome;")
    assert {job for job, outcome, _ in runs if outcome == "succeeded"} == {j.name for j in JOBS}
    assert {outcome for _, outcome, _ in runs} <= {"succeeded", "running"}  # none failed
    doubled = pg.query(
        "SELECT job, date_trunc('second', started_at) FROM job_runs "
        "GROUP BY 1, 2 HAVING count(*) > 1;"
    )
    assert doubled == []

    # It was the pooler that carried it: its log shows the logins, PostgreSQL shows its
    # server connections (from PgBouncer, which names none).
    log = bouncer.log.read_text()
    assert "login attempt: db=vouch user=postgres" in log
    assert "unsupported startup parameter" not in log
    assert "prepared statement" not in vouch.read_log()
