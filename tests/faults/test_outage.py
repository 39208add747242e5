"""Stop PostgreSQL immediately for ~10 s under steady GraphQL, landing and conversion traffic:
requests fail fast with 503 and Retry-After (no hangs), the service recovers by itself once the
database is back, no acknowledged conversion is lost or duplicated, and the clicks the landing
page acknowledged are written once (at most one flush window's worth may be lost)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import PrivatePostgres, VouchProcess
from tests.faults.traffic import Seed, Traffic

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
    seed = Seed.create(pg, vouch)
    clicks_before = Traffic(vouch.base, seed).clicks_for_link(pg)
    load = Traffic(vouch.base, seed)
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
    load.start()
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
        load.finish()

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
    assert all(e[1] == 200 for e in after), [
        (round(e[0] - up_at, 2), e[1], round(e[2], 2)) for e in after if e[1] != 200
    ]

    # Landing and conversions: the same fast 503s while the database is away.
    for entries in (load.landing, load.conversions):
        assert {e.status for e in entries} <= {200, 503}, {e.status for e in entries}
        assert all(e.elapsed < 5.0 for e in entries if e.started > down_at)
        assert all(e.retry_after == "5" for e in entries if e.status == 503)
        assert all(e.status == 200 for e in entries if e.started > up_at + 5)
    outage_conversions = [e for e in load.conversions if down_at + 0.5 < e.started < up_at]
    assert outage_conversions
    assert {e.status for e in outage_conversions} == {503}
    # The ledger: retried with the same keys, every acknowledged conversion is stored once.
    load.retry_pending()
    load.check_ledger(pg)
    assert len(load.acked) == load.sent
    # Clicks: every landing 200 was a promise; the buffer re-queues across the outage.
    time.sleep(1.0)  # a few flush windows
    written = load.clicks_for_link(pg) - clicks_before
    lost = load.landing_ok - written
    print(  # noqa: T201 - the measured figure, reported
        f"\noutage: {load.landing_ok} landing 200s, {written} clicks written, {lost} lost; "
        f"{load.sent} conversions sent, {len(load.acked)} acknowledged and stored once"
    )
    flush_log = [line for line in vouch.read_log().splitlines() if "click" in line]
    # At most one flush window (0.25 s) of this traffic lost, and none written twice: a batch
    # whose COMMIT reached the disk just as the server was killed never got its acknowledgment;
    # it is retried after the restart, and its id (click_batches) shows it was written.
    assert 0 <= lost <= 250, flush_log[-20:]
