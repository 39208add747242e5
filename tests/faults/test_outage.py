"""Stop PostgreSQL immediately for ~10 s under steady traffic: requests fail fast with 503 and
Retry-After (no hangs), and the service recovers by itself once the database is back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import PrivatePostgres, VouchProcess

QUERY = {"query": "{ programs { totalCount } }"}
OUTAGE_SECONDS = 10


@pytest.fixture
def stack(fault_dir: Path):
    tmp_path = fault_dir
    pg = PrivatePostgres(tmp_path / "pg")
    vouch = VouchProcess(database_url=pg.url, data_dir=tmp_path / "data")
    vouch.cli("migrate")
    vouch.start()
    try:
        yield pg, vouch
    finally:
        vouch.stop()
        pg.start()  # leave it running so its cleanup can stop and delete it


def test_database_outage_fails_fast_and_recovers(stack):
    pg, vouch = stack
    key = vouch.admin_key()
    log: list[tuple[float, int, float, str | None]] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=vouch.base, timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    r = client.post(
                        "/graphql", json=QUERY, headers={"authorization": f"Bearer {key}"}
                    )
                    status, retry = r.status_code, r.headers.get("retry-after")
                except httpx.HTTPError:
                    status, retry = 0, None
                log.append((started, status, time.monotonic() - started, retry))
                time.sleep(0.05)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        time.sleep(2)
        down_at = time.monotonic()
        pg.stop_immediately()
        time.sleep(OUTAGE_SECONDS)
        up_at = time.monotonic()
        pg.start()
        time.sleep(8)
    finally:
        stop.set()
        worker.join(timeout=60)

    before = [e for e in log if e[0] < down_at]
    during = [e for e in log if down_at + 0.5 < e[0] < up_at]
    after = [e for e in log if e[0] > up_at + 5]
    assert before
    assert all(e[1] == 200 for e in before)
    # Never a 500 or a dropped connection, not even while the server is starting up.
    assert {e[1] for e in log} <= {200, 503}
    # During the outage: answered, quickly, with 503 and Retry-After — never a hang or a 500.
    assert len(during) > 20
    assert {e[1] for e in during} == {503}
    assert all(e[3] == "5" for e in during)
    assert max(e[2] for e in during) < 5.0
    # Recovered by itself within five seconds of the database coming back.
    assert after
    assert all(e[1] == 200 for e in after)
