"""The read replica behind ``DATABASE_REPLICA_URL``: watched, measured, and bypassed when it is
down or too far behind.

``ReplicaMonitor`` asks the replica every ``VOUCH_REPLICA_CHECK_INTERVAL`` seconds whether it
answers and how far behind it is; ``ReplicaSessions`` hands reports a replica session while it
is usable and a primary session otherwise, so a replica outage degrades reports to the primary
instead of failing them. The lag shows in ``/metrics`` and in ``/readyz``'s detail; an unusable
replica never makes the instance unready.

Lag (one definition everywhere): 0 when the replica has replayed everything it received,
otherwise the age of the last transaction it replayed. A paused or stuck replay therefore
shows a growing lag even if WAL still arrives.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vouch.core.engine import is_database_unavailable
from vouch.core.sessions import RequestSessions

log = logging.getLogger("vouch.replica")

REPLICA_UP = Gauge("vouch_replica_up", "1 if the read replica answered its last check")
REPLICA_LAG = Gauge("vouch_replica_lag_seconds", "How far the read replica is behind (last check)")
REPLICA_SERVING = Gauge(
    "vouch_replica_serving_reports", "1 if reports read the replica, 0 if they fell back"
)

_LAG = text(
    "SELECT pg_is_in_recovery() AS standby, CASE "
    "WHEN NOT pg_is_in_recovery() THEN 0 "
    "WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) "
    "END AS lag"
)


@dataclass
class ReplicaMonitor:
    engine: AsyncEngine
    interval: float
    max_lag: float
    up: bool = False
    lag_seconds: float | None = None
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.up and self.lag_seconds is not None and self.lag_seconds <= self.max_lag

    def detail(self) -> dict[str, object]:
        """What ``/readyz`` reports about the replica."""
        return {
            "status": "ok" if self.up else f"unavailable: {self.error or 'not checked yet'}",
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "reports": "replica" if self.usable else "primary",
        }

    async def check(self) -> None:
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(_LAG)).one()
            self.up, self.lag_seconds, self.error = True, float(row.lag), None
        except Exception as exc:
            if not is_database_unavailable(exc):
                log.exception("the replica check failed")
            was_up = self.up
            self.up, self.lag_seconds, self.error = False, None, type(exc).__name__
            if was_up:
                log.warning("the read replica is unavailable; reports read the primary")
        REPLICA_UP.set(int(self.up))
        if self.lag_seconds is not None:
            REPLICA_LAG.set(self.lag_seconds)
        REPLICA_SERVING.set(int(self.usable))

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)


class ReplicaSessions(RequestSessions):
    """Report sessions: the replica's while the monitor finds it usable, else the primary's."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        *,
        primary: RequestSessions,
        monitor: ReplicaMonitor,
    ) -> None:
        super().__init__(factory, name="replica")
        self.primary = primary
        self.monitor = monitor

    def get(self, state: dict[str, object]) -> AsyncSession:
        if self.monitor.usable:
            return super().get(state)
        return self.primary.get(state)
