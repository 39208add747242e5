"""Issue 13, item 6, with several workers: the attribution decision always names the click of
the landing that led to the claim, even when another worker served the landing and still holds
its click in its buffer (the flush interval here is 10 s, so only a hand-off can write it)."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.faults.harness import ROOT, PrivatePostgres, VouchProcess
from tests.faults.traffic import BROWSER, Seed

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
PAIRS = 16  # landing + claim pairs, each request on its own connection


@pytest.fixture(scope="module")
def two_workers() -> Iterator[tuple[PrivatePostgres, VouchProcess, Seed]]:
    path = ROOT / ".vouch" / f"faults-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    pg = PrivatePostgres(path / "pg")
    vouch = VouchProcess(
        database_url=pg.url,
        data_dir=path / "data",
        workers=2,
        extra_env={
            "VOUCH_CLAIM_RATE_LIMIT": "1000",
            "VOUCH_CLICK_FLUSH_INTERVAL": "10",
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
        shutil.rmtree(path, ignore_errors=True)


def test_every_decision_names_its_click_whichever_worker_served_the_landing(two_workers):
    pg, vouch, seed = two_workers
    before = int(pg.scalar("SELECT coalesce(max(id), 0) FROM referrals;"))
    run = uuid.uuid4().hex[:6]
    for i in range(PAIRS):
        # No keep-alive: the landing and the claim are separate connections, so the kernel
        # hands them to either worker (about half the claims reach the other one).
        with httpx.Client(
            base_url=vouch.base,
            headers={"user-agent": BROWSER},
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=30,
        ) as client:
            page = client.get(f"/r/{seed.landing_code}", params={"ch": "sms"})
            assert page.status_code == 200, page.text[:500]
            match = CSRF_RE.search(page.text)
            assert match, "no csrf field on the landing page"
            claim = client.post(
                f"/r/{seed.landing_code}/claim",
                data={
                    "csrf": match.group(1),
                    "email": f"handoff-{run}-{i}@example.org",
                    "name": "Grace Hopper",
                    "company": "Navy",
                    "consent": "yes",
                },
            )
            assert claim.status_code == 303, claim.text[:500]
    rows = pg.query(
        "SELECT r.id, d.click_id, r.channel FROM referrals r "
        "JOIN attribution_decisions d ON d.referral_id = r.id AND d.is_current "
        f"WHERE r.id > {before} ORDER BY r.id;"
    )
    assert len(rows) == PAIRS
    unnamed = [row for row in rows if not row[1]]
    assert unnamed == [], f"{len(unnamed)} of {PAIRS} decisions name no click: {unnamed}"
    assert {row[2] for row in rows} == {"sms"}
