"""The engine: asyncpg connections with Vouch's server settings, PgBouncer's options, a pool
that replaces connections the server closed, and what counts as "the database is away"."""

from __future__ import annotations

import time
import uuid
import weakref
from collections import deque
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry


def async_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` URLs and point them at asyncpg.

    Unix-socket URLs (``?host=/path``) are passed through; asyncpg understands them.
    """
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def pgbouncer_connect_args() -> dict[str, Any]:
    """asyncpg and SQLAlchemy options for PgBouncer in transaction mode (1.18, no prepared
    statement support): no statement cache, and every prepared statement uniquely named, so a
    server connection that served another client never holds one of the same name."""
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__vouch_{uuid.uuid4().hex}__",
    }


# Engines whose URL is PgBouncer in transaction mode: reads stay inside a transaction there
PGBOUNCER_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def pool_capacity(pool_size: int) -> int:
    """Connections an engine of ``pool_size`` may open: the pool plus its overflow."""
    return pool_size + max(2, pool_size // 2)


class LingeringPool(AsyncAdaptedQueuePool):
    """The engine's pool: SQLAlchemy's queue pool, whose overflow connections linger.

    The queue pool closes an overflow connection the moment it comes back to a pool already
    holding ``pool_size`` idle ones. A request holds its connection only from its first
    statement to its commit, so under steady load the number in use swings between a few and
    all of them many times a second, and a worker closed and opened an overflow connection
    four times a second under a 32-client conversion load: each a connect, the driver's type
    introspection and every statement prepared again on the new connection (~8% of the
    worker's CPU; asyncpg's own pool keeps its connections). Here an overflow connection that
    comes back to a full pool is kept open aside and handed out when the pool is empty, before
    any new one is opened; one not needed for ``LINGER_SECONDS`` is closed at the pool's next
    check-out or check-in. The limits are the queue pool's: never more than ``pool_size +
    max_overflow`` connections, a checkout waits ``pool_timeout`` at most. ``checkedout()``
    counts only connections in use."""

    LINGER_SECONDS = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (connection, when it came back), oldest first; still counted in the overflow
        self._lingering: deque[tuple[ConnectionPoolEntry, float]] = deque()

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        now = time.monotonic()
        self._close_stale(now)
        if self._pool.full():
            self._lingering.append((record, now))
        else:
            self._pool.put(record, False)

    def _do_get(self) -> ConnectionPoolEntry:
        self._close_stale(time.monotonic())
        if self._lingering and self._pool.empty():
            return self._lingering.pop()[0]  # the most recently used
        return super()._do_get()

    def _close_stale(self, now: float) -> None:
        while self._lingering and now - self._lingering[0][1] > self.LINGER_SECONDS:
            record = self._lingering.popleft()[0]
            try:
                record.close()
            finally:
                self._dec_overflow()

    def checkedout(self) -> int:
        return super().checkedout() - len(self._lingering)

    def dispose(self) -> None:
        while self._lingering:
            record = self._lingering.popleft()[0]
            record.close()
            self._dec_overflow()
        super().dispose()


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    pool_timeout: float = 2.0,
    statement_timeout_ms: int = 15000,
    idle_in_transaction_timeout_ms: int | None = None,
    pgbouncer: bool = False,
) -> AsyncEngine:
    """An asyncpg engine. The server processes pass ``idle_in_transaction_timeout_ms``: a
    transaction left open by a stuck request is ended by PostgreSQL and its connection freed;
    CLI batch commands, which may think between statements, leave it unset."""
    server_settings = {
        "application_name": "vouch",
        "statement_timeout": str(statement_timeout_ms),
        "timezone": "UTC",
    }
    if idle_in_transaction_timeout_ms is not None:
        server_settings["idle_in_transaction_session_timeout"] = str(idle_in_transaction_timeout_ms)
    extra: dict[str, Any] = {}
    if pgbouncer:
        # PgBouncer refuses startup parameters it does not track: statement_timeout and
        # idle_in_transaction_session_timeout are set on the role instead (docs/OPERATIONS.md,
        # "PgBouncer").
        del server_settings["statement_timeout"]
        server_settings.pop("idle_in_transaction_session_timeout", None)
        extra = pgbouncer_connect_args()
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_capacity(pool_size) - pool_size,
        pool_timeout=pool_timeout,
        poolclass=LingeringPool,
        # No pool_pre_ping: with asyncpg it is three round trips (BEGIN, ";", ROLLBACK) before
        # every request, more than the work of most requests. A server restart or an admin's
        # pg_terminate_backend closes the socket, which asyncpg notices without a round trip
        # (see _discard_closed); a connection that dies silently fails its first statement,
        # SQLAlchemy then invalidates the whole pool, and the caller gets a 503.
        pool_pre_ping=False,
        pool_recycle=1800,
        # Error messages (and so log lines and tracebacks) never carry the statement's values.
        hide_parameters=True,
        connect_args={
            "timeout": 5,
            "command_timeout": 30,
            "server_settings": server_settings,
            **extra,
        },
    )
    event.listen(engine.sync_engine.pool, "checkout", _discard_closed)
    if pgbouncer:
        PGBOUNCER_ENGINES.add(engine.sync_engine)
    return engine


def _discard_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pessimistic disconnect handling without a round trip: a pooled connection whose socket
    the server closed is replaced before anyone uses it (the pool retries the checkout)."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def is_database_unavailable(exc: BaseException, _depth: int = 0) -> bool:
    """True for errors that mean "the database cannot be reached right now": pool exhausted,
    connection refused or lost, server shutting down or starting up (SQLSTATE 08xxx, 57Pxx)."""
    if _depth > 5:
        return False
    if isinstance(exc, PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, (ConnectionError, OSError, TimeoutError)):
        return True
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return True  # a prebuilt read on a connection the server closed mid-request
    sqlstate = str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")
    if sqlstate.startswith(("08", "57P")):
        return True
    for inner in (getattr(exc, "orig", None), exc.__cause__, exc.__context__):
        if inner is not None and inner is not exc and is_database_unavailable(inner, _depth + 1):
            return True
    return False
