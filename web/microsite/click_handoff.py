"""Cross-worker click hand-off, so an attribution decision always names its click.

A landing hit is buffered by the worker that served it and written within the flush interval.
A claim posted sooner than that, and taken by *another* worker (``--workers N``, several
hosts), would find no click to name. So the claiming worker, when the visitor's click is not in
the table yet and the page was loaded moments ago, asks every worker over PostgreSQL
LISTEN/NOTIFY (the cache-invalidation listener's connection): "write the clicks you hold for
visitor V". The worker holding them flushes its buffer and answers "written V"; the claim then
reads the click. The wait is bounded (``HANDOFF_TIMEOUT``): without an answer the claim goes on
and names no click, as it would have before. The payload is the random visitor cookie id, no
personal data."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from vouch.jobs.click_buffer import ClickBuffer

logger = logging.getLogger("vouch.click_handoff")

FLUSH_CHANNEL = "vouch_click_flush"  # payload: a visitor id whose clicks someone needs
FLUSHED_CHANNEL = "vouch_click_flushed"  # payload: a visitor id whose clicks were written
HANDOFF_TIMEOUT = 1.0


class ClickHandoff:
    """One per worker: answers other workers' flush requests and makes its own."""

    def __init__(self, clicks: ClickBuffer, *, timeout: float = HANDOFF_TIMEOUT) -> None:
        self.clicks = clicks
        self.timeout = timeout
        self._connection: Any = None  # the listener's asyncpg connection while subscribed
        self._send_lock = asyncio.Lock()  # one statement at a time on that connection
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def subscribe(self, connection: Any) -> None:
        """Called by the listener once connected; ``unsubscribe`` when the connection is lost."""
        await connection.add_listener(FLUSH_CHANNEL, self._on_flush_request)
        await connection.add_listener(FLUSHED_CHANNEL, self._on_flushed)
        self._connection = connection

    def unsubscribe(self) -> None:
        self._connection = None

    async def ensure_written(self, visitor_id: str) -> bool:
        """Have this visitor's buffered clicks written, by this worker or by whichever holds
        them; ``True`` once written, ``False`` if nobody answered in time (or no listener)."""
        if self.clicks.holds(visitor_id):
            await self.clicks.flush()
            return True
        connection = self._connection
        if connection is None:
            return False
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(visitor_id, []).append(answered)
        try:
            await self._notify(connection, FLUSH_CHANNEL, visitor_id)
            await asyncio.wait_for(answered, self.timeout)
            return True
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        finally:
            waiters = self._waiting.get(visitor_id, [])
            if answered in waiters:
                waiters.remove(answered)
            if not waiters:
                self._waiting.pop(visitor_id, None)

    async def _notify(self, connection: Any, channel: str, payload: str) -> None:
        async with self._send_lock:
            await connection.execute("SELECT pg_notify($1, $2)", channel, payload)

    def _on_flush_request(self, _conn: Any, _pid: int, _channel: str, visitor_id: str) -> None:
        if self.clicks.holds(visitor_id):
            task = asyncio.get_running_loop().create_task(self._flush_and_answer(visitor_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush_and_answer(self, visitor_id: str) -> None:
        try:
            await self.clicks.flush()
            if self.clicks.holds(visitor_id):  # the database refused the batch: kept for later
                return
            connection = self._connection
            if connection is not None:
                await self._notify(connection, FLUSHED_CHANNEL, visitor_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.info("click hand-off answer not sent: %s", type(exc).__name__)

    def _on_flushed(self, _conn: Any, _pid: int, _channel: str, visitor_id: str) -> None:
        for answered in self._waiting.get(visitor_id, []):
            if not answered.done():
                answered.set_result(None)
