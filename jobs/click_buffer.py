"""The click buffer: the runtime side of click recording (issue 19 moved it here from the domain,
since it owns sessions and commits).

The landing page never waits for the database to record a click: it appends to the buffer,
and a background task writes the buffer in one multi-row INSERT every
``settings.click_flush_interval`` seconds and once more on shutdown.

When the buffer is full (the database has been unreachable or slow for a while), the newest
click is dropped and counted in ``dropped`` (exported as ``vouch_clicks_dropped_total``)
instead of blocking the page or growing memory without bound. A batch whose write failed
because the database was away is kept whole and retried first, under its id, so a short
database blip loses nothing; and since each batch records its id in its own transaction
(``click_batches``), a batch whose COMMIT succeeded but whose acknowledgment was lost (the
server died in between) is recognised on the retry and not written twice.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field

from asyncpg import exceptions as pg_errors  # type: ignore[import-untyped]
from prometheus_client import Counter
from sqlalchemy import select, text
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vouch.attribution.clicks import ClickRecord, insert_clicks
from vouch.core.engine import is_database_unavailable
from vouch.models import ReferralLink

log = logging.getLogger("vouch.clicks")

CLICKS_RECORDED = Counter("vouch_clicks_recorded_total", "Clicks written to the database.")
CLICKS_DROPPED = Counter(
    "vouch_clicks_dropped_total", "Clicks dropped because the click buffer was full."
)

# Failures worth retrying: the database is unreachable or restarting, not the data.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    OperationalError,
    SAInterfaceError,
    # asyncpg's own connection errors, raised by the raw COPY.
    pg_errors.CannotConnectNowError,
    pg_errors.ConnectionDoesNotExistError,
    pg_errors.InterfaceError,
    pg_errors.PostgresConnectionError,
)


def _is_transient(exc: BaseException) -> bool:
    """The database is unreachable, restarting or out of pool connections: retry later.

    Connection loss mid-statement surfaces as a bare ``DBAPIError`` wrapping asyncpg's
    ``ConnectionDoesNotExistError``; an exhausted pool as SQLAlchemy's ``TimeoutError``."""
    return isinstance(exc, _TRANSIENT) or is_database_unavailable(exc)


_CLAIM_BATCH = text(
    "INSERT INTO click_batches (id, clicks) VALUES (:id, :clicks) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)


@dataclass(slots=True)
class _Batch:
    id: str
    records: list[ClickRecord]


@dataclass
class ClickBuffer:
    """Bounded buffer of clicks, written in batches by ``run()`` and ``flush()``."""

    sessionmaker: async_sessionmaker[AsyncSession]
    max_size: int
    interval: float
    dropped: int = 0
    recorded: int = 0
    _items: deque[ClickRecord] = field(default_factory=deque)
    # batches whose write failed while the database was away, oldest first, retried whole
    _retry: deque[_Batch] = field(default_factory=deque)
    _retrying: int = 0  # clicks in _retry
    _writing: list[ClickRecord] = field(default_factory=list)  # the batch being written
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __len__(self) -> int:
        return len(self._items) + self._retrying

    def holds(self, visitor_id: str) -> bool:
        """Whether a click of this visitor waits here (queued, retried or being written)."""
        return any(
            r.visitor_id == visitor_id
            for r in itertools.chain(self._writing, self._items, *(b.records for b in self._retry))
        )

    def queued(self) -> list[ClickRecord]:
        """The buffered clicks in the order they will be written."""
        return [r for batch in self._retry for r in batch.records] + list(self._items)

    def add(self, record: ClickRecord) -> bool:
        """Queue a click; ``False`` (and counted as dropped) when the buffer is full."""
        if len(self) >= self.max_size:
            self.dropped += 1
            CLICKS_DROPPED.inc()
            return False
        self._items.append(record)
        return True

    async def flush(self) -> int:
        """Write the batches waiting for a retry, then everything buffered since; returns how
        many clicks were written. Stops at the first batch the database cannot take."""
        async with self._lock:
            written = 0
            while self._retry:
                batch = self._retry[0]
                count = await self._attempt(batch)
                if count is None:
                    return written
                self._retry.popleft()
                self._retrying -= len(batch.records)
                written += count
            if self._items:
                batch = _Batch(uuid.uuid4().hex, list(self._items))
                self._items.clear()
                count = await self._attempt(batch)
                if count is None:
                    self._requeue(batch)
                else:
                    written += count
            return written

    async def _attempt(self, batch: _Batch) -> int | None:
        """Write one batch: how many clicks were written, or None if the database is away."""
        try:
            await self._write(batch)
        except Exception as exc:
            if _is_transient(exc):
                log.warning(
                    "click flush failed (%s); %d clicks kept for a retry",
                    type(exc).__name__,
                    len(batch.records),
                )
                return None
            # Most likely a link deleted since the click: write the rows that still have
            # a link, drop (and count) the rest rather than retrying a poison batch forever.
            salvaged = await self._salvage(batch, exc)
            if salvaged is None:
                return None
            count = len(salvaged)
        else:
            count = len(batch.records)
        self.recorded += count
        CLICKS_RECORDED.inc(count)
        return count

    async def _write(self, batch: _Batch) -> None:
        self._writing = batch.records
        try:
            async with self.sessionmaker() as session:
                claimed = await session.scalar(
                    _CLAIM_BATCH, {"id": batch.id, "clicks": len(batch.records)}
                )
                if claimed is not None:  # else written before: its acknowledgment was lost
                    await insert_clicks(session, batch.records)
                await session.commit()
        finally:
            self._writing = []

    def _requeue(self, batch: _Batch) -> None:
        """Keep a failed new batch for a retry, within the bound (without room, its newest
        clicks are dropped and counted)."""
        room = max(0, self.max_size - len(self))
        kept = batch.records[:room]
        self._drop(len(batch.records) - len(kept))
        if kept:
            self._retry.append(_Batch(batch.id, kept))
            self._retrying += len(kept)

    def _drop(self, count: int) -> None:
        if count:
            self.dropped += count
            CLICKS_DROPPED.inc(count)

    async def _salvage(self, batch: _Batch, exc: BaseException) -> list[ClickRecord] | None:
        """The rows of ``batch`` that could be written (under the batch's id: the failed
        attempt was rolled back); ``None`` if the database went away meanwhile."""
        try:
            async with self.sessionmaker() as session:
                live = set(
                    await session.scalars(
                        select(ReferralLink.id).where(
                            ReferralLink.id.in_({r.link_id for r in batch.records})
                        )
                    )
                )
            keep = [r for r in batch.records if r.link_id in live]
            await self._write(_Batch(batch.id, keep))
        except Exception as again:
            if _is_transient(again):
                return None
            log.error(
                "click flush failed twice (%s, %s); %d clicks dropped",
                type(exc).__name__,
                type(again).__name__,
                len(batch.records),
            )
            self._drop(len(batch.records))
            return []
        orphans = len(batch.records) - len(keep)
        self._drop(orphans)
        log.warning("click flush dropped %d clicks of deleted links", orphans)
        return keep

    async def run(self) -> None:
        """Flush every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
