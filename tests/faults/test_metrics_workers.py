"""/metrics with ``vouch serve --workers 2``: every scrape, whichever worker answers it, adds up
every worker's counters (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import shutil
import uuid

import httpx

from tests.faults.harness import ROOT, PrivatePostgres, VouchProcess
from tests.web.test_metrics import _value


def test_counters_add_up_across_workers():
    from concurrent.futures import ThreadPoolExecutor

    path = ROOT / ".vouch" / f"faults-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    pg = PrivatePostgres(path / "pg")
    vouch = VouchProcess(
        database_url=pg.url,
        data_dir=path / "data",
        workers=2,
        extra_env={"VOUCH_WEBHOOK_WORKER": "false"},
    )
    sample = 'vouch_http_requests_total{route="/readyz",status="200"}'

    def ready(_: int) -> int:
        return httpx.get(f"{vouch.base}/readyz", timeout=10).status_code

    try:
        vouch.cli("migrate")
        vouch.start()  # waits for /readyz: some are counted before the traffic
        with ThreadPoolExecutor(16) as pool:  # new connections, concurrent: both workers serve
            assert set(pool.map(ready, range(300))) == {200}
        with httpx.Client(base_url=vouch.base, timeout=10) as http:
            seen = [_value(http.get("/metrics").text, sample) for _ in range(8)]
        # every scrape, whichever worker answers it, counts every request once
        assert len(set(seen)) == 1, seen
        assert 300 <= seen[0] <= 300 + 300, seen
    finally:
        vouch.stop()
        pg.server.cleanup()
        shutil.rmtree(path, ignore_errors=True)
