"""Steady client traffic for the fault tests, with a client-side ledger of what the server
acknowledged: landing hits (``GET /r/{code}``, each 200 is a click the server promised to
record) and conversions (``POST /api/conversions``, each with its own idempotency key and order
reference; a 2xx is a promise that the conversion is stored)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.faults.harness import PrivatePostgres, VouchProcess

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
OCCURRED_AT = "2026-11-01T12:00:00+00:00"


@dataclass
class Seed:
    """What the demo data gives the traffic: an admin key, a landing code, a redemption code."""

    key: str
    landing_code: str
    redemption_code: str

    @classmethod
    def create(cls, pg: PrivatePostgres, vouch: VouchProcess) -> Seed:
        import json

        demo = json.loads(vouch.cli("demo", "--json"))
        code = demo["share_link"].rsplit("/", 1)[1]
        redemption = pg.scalar("SELECT code FROM offer_redemptions ORDER BY id LIMIT 1;")
        return cls(key=demo["api_key"], landing_code=code, redemption_code=redemption)


@dataclass
class Entry:
    started: float
    status: int
    elapsed: float
    retry_after: str | None


@dataclass
class Traffic:
    base: str
    seed: Seed
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    landing: list[Entry] = field(default_factory=list)
    conversions: list[Entry] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)  # idempotency key -> order reference
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # sent, not acknowledged
    sent: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    fresh_connections: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def landing_ok(self) -> int:
        return sum(1 for e in self.landing if e.status == 200)

    def _client(self, timeout: float = 30) -> httpx.Client:
        keepalive = 0 if self.fresh_connections else 20
        return httpx.Client(
            base_url=self.base,
            timeout=timeout,
            headers={"user-agent": BROWSER},
            limits=httpx.Limits(max_keepalive_connections=keepalive),
        )

    def _landing_loop(self) -> None:
        with self._client() as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    r = client.get(f"/r/{self.seed.landing_code}")
                    status, retry = r.status_code, r.headers.get("retry-after")
                except httpx.HTTPError:
                    status, retry = 0, None
                self.landing.append(Entry(started, status, time.monotonic() - started, retry))
                time.sleep(0.01)

    def conversion_body(self, ref: str) -> dict[str, Any]:
        return {
            "redemptionCode": self.seed.redemption_code,
            "kind": "purchase",
            "externalRef": ref,
            "amountMinor": 1250,
            "currency": "USD",
            "occurredAt": OCCURRED_AT,
        }

    def send_conversion(self, client: httpx.Client, idem: str, body: dict[str, Any]) -> int:
        started = time.monotonic()
        try:
            r = client.post(
                "/api/conversions",
                json=body,
                headers={"authorization": f"Bearer {self.seed.key}", "idempotency-key": idem},
            )
            status, retry = r.status_code, r.headers.get("retry-after")
        except httpx.HTTPError:
            status, retry = 0, None
        self.conversions.append(Entry(started, status, time.monotonic() - started, retry))
        with self._lock:
            if 200 <= status < 300:
                self.acked[idem] = body["externalRef"]
                self.pending.pop(idem, None)
            else:
                self.pending[idem] = body
        return status

    def _conversion_loop(self) -> None:
        with self._client() as client:
            while not self.stop.is_set():
                with self._lock:
                    n = self.sent
                    self.sent += 1
                ref = f"{self.run}-{n}"
                self.send_conversion(client, f"idem-{ref}", self.conversion_body(ref))
                time.sleep(0.02)

    def start(self, *, landing_threads: int = 1, conversion_threads: int = 1) -> None:
        for _ in range(landing_threads):
            self.threads.append(threading.Thread(target=self._landing_loop))
        for _ in range(conversion_threads):
            self.threads.append(threading.Thread(target=self._conversion_loop))
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def retry_pending(self, deadline_seconds: float = 20) -> None:
        """Clients retry what was never acknowledged, with the same key, until it is."""
        deadline = time.monotonic() + deadline_seconds
        with self._client() as client:
            while self.pending and time.monotonic() < deadline:
                for idem, body in list(self.pending.items()):
                    self.send_conversion(client, idem, body)
                if self.pending:
                    time.sleep(0.5)
        assert not self.pending, f"still unacknowledged after retries: {len(self.pending)}"

    def check_ledger(self, pg: PrivatePostgres) -> None:
        """Every acknowledged conversion is in the database exactly once, and nothing else is."""
        rows = pg.query(
            "SELECT external_ref, count(*) FROM conversions "
            f"WHERE external_ref LIKE '{self.run}-%' GROUP BY external_ref;"
        )
        stored = {ref: int(n) for ref, n in rows}
        assert set(stored) == set(self.acked.values())
        assert set(stored.values()) == {1}
        keys = int(
            pg.scalar(
                "SELECT count(*) FROM idempotency_keys "
                f"WHERE scope = 'record_conversion' AND key LIKE 'idem-{self.run}-%';"
            )
        )
        assert keys == len(self.acked)

    def clicks_for_link(self, pg: PrivatePostgres) -> int:
        return int(
            pg.scalar(
                "SELECT count(*) FROM clicks c JOIN referral_links l ON l.id = c.link_id "
                f"WHERE l.code = '{self.seed.landing_code}';"
            )
        )

    def settled_clicks(self, pg: PrivatePostgres, quiet: float = 0.6) -> int:
        """The click count once no buffered click is still on its way (two reads, a few
        flush windows apart, agree)."""
        previous = self.clicks_for_link(pg)
        while True:
            time.sleep(quiet)
            current = self.clicks_for_link(pg)
            if current == previous:
                return current
            previous = current
