"""Exhaust the connection pool with slow GraphQL requests: the cached landing page keeps
answering, excess requests wait in admission's line and get 503 + Retry-After when their wait
passes ``VOUCH_REQUEST_QUEUE_TIMEOUT`` (2 s here), and afterwards no connection is leaked.

The slow requests are real ones: the test holds an ACCESS EXCLUSIVE lock on ``programs`` from a
psql session of its own for a few seconds, so ``{ programs { totalCount } }`` blocks while
holding its pooled connection. No test-only endpoint is needed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import PrivatePostgres, VouchProcess
from tests.faults.traffic import BROWSER, Seed

QUERY = {"query": "{ programs { totalCount } }"}
POOL = 2  # pool_size 2 + max_overflow 2 = 4 connections
SLOW = 12
HOLD_SECONDS = 6


@pytest.fixture
def small_pool(fault_dir: Path):
    pg = PrivatePostgres(fault_dir / "pg")
    vouch = VouchProcess(
        database_url=pg.url,
        data_dir=fault_dir / "data",
        extra_env={
            "VOUCH_DB_POOL_SIZE": str(POOL),
            "VOUCH_REQUEST_QUEUE_TIMEOUT": "2",
            "VOUCH_WEBHOOK_WORKER": "false",
        },
    )
    try:
        vouch.cli("migrate")
        seed = Seed.create(pg, vouch)
        vouch.start()
        yield pg, vouch, seed
    finally:
        vouch.stop()
        pg.server.cleanup()


def vouch_connections(pg: PrivatePostgres) -> list[list[str]]:
    return pg.query(
        "SELECT state, coalesce(wait_event_type, '') FROM pg_stat_activity "
        "WHERE application_name = 'vouch' AND datname = 'vouch';"
    )


def test_pool_exhaustion_fails_fast_keeps_landing_up_and_leaks_nothing(small_pool):
    pg, vouch, seed = small_pool
    auth = {"authorization": f"Bearer {seed.key}"}
    with httpx.Client(base_url=vouch.base, timeout=30, headers={"user-agent": BROWSER}) as c:
        assert c.post("/graphql", json=QUERY, headers=auth).status_code == 200
        assert c.get(f"/r/{seed.landing_code}").status_code == 200  # resolved and cached

    locker = pg.hold(
        "BEGIN; LOCK TABLE programs IN ACCESS EXCLUSIVE MODE; "
        f"SELECT pg_sleep({HOLD_SECONDS}); COMMIT;"
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not pg.query(
        "SELECT 1 FROM pg_locks WHERE relation = 'programs'::regclass "
        "AND mode = 'AccessExclusiveLock' AND granted;"
    ):
        time.sleep(0.05)
    locked_at = time.monotonic()

    slow: list[tuple[int, float, str | None]] = []
    landing: list[tuple[int, float]] = []

    def slow_request() -> None:
        started = time.monotonic()
        with httpx.Client(base_url=vouch.base, timeout=30) as client:
            r = client.post("/graphql", json=QUERY, headers=auth)
        slow.append((r.status_code, time.monotonic() - started, r.headers.get("retry-after")))

    def landing_loop() -> None:
        with httpx.Client(base_url=vouch.base, timeout=30, headers={"user-agent": BROWSER}) as c:
            while time.monotonic() < locked_at + HOLD_SECONDS - 1:
                started = time.monotonic()
                r = c.get(f"/r/{seed.landing_code}")
                landing.append((r.status_code, time.monotonic() - started))
                time.sleep(0.05)

    threads = [threading.Thread(target=slow_request) for _ in range(SLOW)]
    threads.append(threading.Thread(target=landing_loop))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert locker.wait(timeout=30) == 0

    # The landing page answered throughout, from its cache, without a pooled connection.
    assert len(landing) > 20
    assert {s for s, _ in landing} == {200}
    assert max(e for _, e in landing) < 1.0
    # Four requests got a place and a connection and waited for the lock; the rest waited in
    # line for a place and were refused when their wait ran out.
    statuses = sorted(s for s, _, _ in slow)
    assert statuses == [200] * (2 * POOL) + [503] * (SLOW - 2 * POOL)
    refused = [(e, retry) for s, e, retry in slow if s == 503]
    assert all(retry == "1" for _, retry in refused)
    assert max(e for e, _ in refused) < 3.0  # the 2 s queue timeout, plus a little
    # Afterwards: everything back in the pool, nothing idle in a transaction, service healthy.
    # The snapshot checked is the one the wait ended on: a click flush may make a connection
    # active for a moment at any time, a leaked one would stay busy.
    deadline = time.monotonic() + 5
    connections = vouch_connections(pg)
    while time.monotonic() < deadline and any(s != "idle" for s, _ in connections):
        time.sleep(0.1)
        connections = vouch_connections(pg)
    assert 1 <= len(connections) <= 2 * POOL
    assert {s for s, _ in connections} == {"idle"}
    with httpx.Client(base_url=vouch.base, timeout=30) as client:
        assert client.post("/graphql", json=QUERY, headers=auth).status_code == 200
    # The clicks taken while the pool was exhausted were re-queued, not dropped.
    assert "clicks dropped" not in vouch.read_log()


CLIENTS = 64
EACH = 4


@pytest.fixture
def busy_pool(fault_dir: Path):
    """A worker whose pool would give up after half a second: every wait is admission's."""
    pg = PrivatePostgres(fault_dir / "pg")
    vouch = VouchProcess(
        database_url=pg.url,
        data_dir=fault_dir / "data",
        extra_env={
            "VOUCH_DB_POOL_SIZE": str(POOL),
            "VOUCH_DB_POOL_TIMEOUT": "0.5",
            "VOUCH_WEBHOOK_WORKER": "false",
        },
    )
    try:
        vouch.cli("migrate")
        seed = Seed.create(pg, vouch)
        vouch.start()
        yield pg, vouch, seed
    finally:
        vouch.stop()
        pg.server.cleanup()


CONVERT = (
    "mutation($i: RecordConversionInput!) { recordConversion(input: $i) "
    "{ conversion { externalRef } errors { code } } }"
)


def test_sixty_four_concurrent_writers_are_queued_not_refused(busy_pool):
    """64 clients each send conversions back to back to a worker with 4 connections whose
    pool times out after 0.5 s. Before admission control, requests waited on the pool and a
    share got 503; now they wait in line for a place and every one is answered 200."""
    pg, vouch, seed = busy_pool
    auth = {"authorization": f"Bearer {seed.key}"}
    answers: list[tuple[int, str]] = []
    start = threading.Barrier(CLIENTS)

    def writer(n: int) -> None:
        with httpx.Client(base_url=vouch.base, timeout=60, headers=auth) as client:
            start.wait()
            for i in range(EACH):
                ref = f"burst-{n}-{i}"
                variables = {
                    "i": {
                        "redemptionCode": seed.redemption_code,
                        "kind": "SIGNUP",
                        "externalRef": ref,
                        "idempotencyKey": ref,
                    }
                }
                r = client.post("/graphql", json={"query": CONVERT, "variables": variables})
                answers.append((r.status_code, r.text if r.status_code != 200 else ref))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(answers) == CLIENTS * EACH
    assert [a for a in answers if a[0] != 200] == []
    stored = pg.scalar("SELECT count(*) FROM conversions WHERE external_ref LIKE 'burst-%';")
    assert int(stored) == CLIENTS * EACH
    assert "database unavailable" not in vouch.read_log()
