"""Attacks on a real ``vouch serve`` over real sockets (issue 14, items 2 and 7).

- Fifty unauthenticated clients trickle claim-form bodies in, one byte every half second, on
  links the server has never resolved (a link-cache miss each). No request holds a pooled
  connection while it reads its body, so ``/readyz`` and GraphQL keep answering within 2 s,
  nothing sits ``idle in transaction``, and each slow client gets a 408 once the body-read
  deadline passes.
- ``X-Forwarded-For`` from 127.0.0.1 (a same-host proxy passing it through) does not give one
  client a fresh claim allowance per spoofed address.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.faults.harness import PrivatePostgres, VouchProcess
from tests.faults.traffic import BROWSER

SLOW_CLIENTS = 50
BODY_DEADLINE = 4  # VOUCH_BODY_READ_TIMEOUT for this server
TRICKLE_SECONDS = 0.5
CLAIM_LIMIT = 3
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[PrivatePostgres, VouchProcess, str, list[str]]]:
    import shutil
    import uuid

    from tests.faults.harness import ROOT

    path = ROOT / ".vouch" / f"faults-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    pg = PrivatePostgres(path / "pg")
    vouch = VouchProcess(
        database_url=pg.url,
        data_dir=path / "data",
        extra_env={
            "VOUCH_WEBHOOK_WORKER": "false",
            "VOUCH_BODY_READ_TIMEOUT": str(BODY_DEADLINE),
            "VOUCH_CLAIM_RATE_LIMIT": str(CLAIM_LIMIT),
        },
    )
    try:
        vouch.cli("migrate")
        vouch.cli("demo", "--json")
        key = vouch.admin_key()
        vouch.start()
        yield pg, vouch, key, _fresh_links(vouch.base, key, SLOW_CLIENTS + 1)
    finally:
        vouch.stop()
        pg.server.cleanup()
        shutil.rmtree(path, ignore_errors=True)


def _fresh_links(base: str, key: str, n: int) -> list[str]:
    """``n`` links the server has never resolved (new channels of the demo's first advocate)."""
    auth = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=30, headers=auth) as c:
        ids = c.post(
            "/graphql",
            json={
                "query": "{ advocates(first: 1) { nodes { id } } "
                "programs(first: 1, status: ACTIVE) { nodes { id } } }"
            },
        ).json()["data"]
        advocate, program = ids["advocates"]["nodes"][0]["id"], ids["programs"]["nodes"][0]["id"]
        codes = []
        for i in range(n):
            payload = c.post(
                "/graphql",
                json={
                    "query": "mutation($a: ID!, $p: ID!, $c: String!) { createReferralLink("
                    "advocateId: $a, programId: $p, channel: $c) { link { code } errors { message } } }",
                    "variables": {"a": advocate, "p": program, "c": f"slow{i}"},
                },
            ).json()["data"]["createReferralLink"]
            assert payload["errors"] == [], payload
            codes.append(payload["link"]["code"])
    return codes


def _connections(pg: PrivatePostgres) -> list[str]:
    return [
        row[0]
        for row in pg.query(
            "SELECT state FROM pg_stat_activity WHERE application_name = 'vouch' "
            "AND datname = 'vouch';"
        )
    ]


def test_slow_bodies_hold_no_connection_and_the_service_keeps_answering(served):
    pg, vouch, key, codes = served
    stop = threading.Event()
    answers: list[bytes] = []
    lock = threading.Lock()

    def slow_client(code: str) -> None:
        with socket.create_connection(("127.0.0.1", vouch.port), timeout=BODY_DEADLINE + 10) as s:
            s.sendall(
                f"POST /r/{code}/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"User-Agent: {BROWSER}\r\nContent-Length: 200\r\n\r\n".encode()
            )
            s.setblocking(False)
            received = b""
            while not stop.is_set() and not received:
                with contextlib.suppress(OSError):  # answered and closed: read it below
                    s.send(b"a")
                time.sleep(TRICKLE_SECONDS)
                try:
                    received = s.recv(4096)
                except (BlockingIOError, OSError):
                    received = b""
            with lock:
                answers.append(received)

    threads = [threading.Thread(target=slow_client, args=(c,)) for c in codes[:SLOW_CLIENTS]]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)  # every slow client is mid-body now
        timings: list[tuple[str, int, float]] = []
        states: list[str] = []
        auth = {"authorization": f"Bearer {key}"}
        with httpx.Client(base_url=vouch.base, timeout=10) as c:
            for _ in range(4):
                started = time.monotonic()
                r = c.get("/readyz")
                timings.append(("readyz", r.status_code, time.monotonic() - started))
                started = time.monotonic()
                r = c.post("/graphql", json={"query": "{ programs { totalCount } }"}, headers=auth)
                timings.append(("graphql", r.status_code, time.monotonic() - started))
                states += _connections(pg)
                time.sleep(0.3)
        assert {(name, status) for name, status, _ in timings} == {
            ("readyz", 200),
            ("graphql", 200),
        }
        assert max(elapsed for _, _, elapsed in timings) < 2.0
        assert "idle in transaction" not in states
        assert len(set(states)) >= 1
    finally:
        for t in threads:
            t.join(timeout=BODY_DEADLINE + 15)
        stop.set()
    # Each slow client was told its body did not arrive in time.
    assert len(answers) == SLOW_CLIENTS
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
    # Nothing was claimed, nothing is left open.
    assert (
        pg.scalar(
            "SELECT count(*) FROM referrals r JOIN referral_links l ON l.id = r.link_id "
            "WHERE l.channel LIKE 'slow%';"
        )
        == "0"
    )
    assert "idle in transaction" not in _connections(pg)
    assert "unhandled error" not in vouch.read_log()


def test_spoofed_forwarded_for_gets_no_fresh_allowance(served):
    pg, vouch, _key, codes = served
    statuses = []
    with httpx.Client(base_url=vouch.base, timeout=10, headers={"user-agent": BROWSER}) as c:
        for i in range(CLAIM_LIMIT + 3):
            page = c.get(f"/r/{codes[-1]}")
            match = CSRF_RE.search(page.text)
            assert match is not None
            r = c.post(
                f"/r/{codes[-1]}/claim",
                data={"csrf": match.group(1), "email": f"spoof{i}@example.org", "consent": "yes"},
                headers={"x-forwarded-for": f"198.51.100.{i + 1}"},
            )
            statuses.append((r.status_code, r.headers.get("retry-after") is not None))
    assert statuses == [(303, False)] * CLAIM_LIMIT + [(429, True)] * 3
    assert pg.scalar("SELECT count(*) FROM referrals WHERE email LIKE 'spoof%';") == str(
        CLAIM_LIMIT
    )
