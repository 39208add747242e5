"""Engine and session factory. Transactions open and close at the edge, never in the domain."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def async_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` URLs and point them at asyncpg.

    Unix-socket URLs (``?host=/path``) are passed through; asyncpg understands them.
    """
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(
    url: str, *, pool_size: int = 10, pool_timeout: float = 2.0, statement_timeout_ms: int = 15000
) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max(2, pool_size // 2),
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args={
            "timeout": 5,
            "command_timeout": 30,
            "server_settings": {
                "application_name": "vouch",
                "statement_timeout": str(statement_timeout_ms),
                "timezone": "UTC",
            },
        },
    )


P = ParamSpec("P")
T = TypeVar("T")


class _TaskLock:
    """A re-entrant (per task) asyncio lock."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if self._owner is task and task is not None:
            self._depth += 1
            return
        await self._lock.acquire()
        self._owner, self._depth = task, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


def _serialized(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(method)
    async def wrapper(self: SerialSession, *args: Any, **kwargs: Any) -> T:
        await self._task_lock.acquire()
        try:
            return await method(self, *args, **kwargs)
        finally:
            self._task_lock.release()

    return wrapper


class SerialSession(AsyncSession):
    """An AsyncSession that queues concurrent callers instead of failing.

    GraphQL resolves sibling fields and dataloader batches concurrently; one session per
    request must still run one statement at a time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._task_lock = _TaskLock()

    execute = _serialized(AsyncSession.execute)  # type: ignore[assignment]
    scalar = _serialized(AsyncSession.scalar)  # type: ignore[assignment]
    scalars = _serialized(AsyncSession.scalars)  # type: ignore[assignment]
    get = _serialized(AsyncSession.get)  # type: ignore[assignment]
    flush = _serialized(AsyncSession.flush)  # type: ignore[assignment]
    commit = _serialized(AsyncSession.commit)  # type: ignore[assignment]
    rollback = _serialized(AsyncSession.rollback)  # type: ignore[assignment]
    refresh = _serialized(AsyncSession.refresh)  # type: ignore[assignment]
    merge = _serialized(AsyncSession.merge)  # type: ignore[assignment]
    delete = _serialized(AsyncSession.delete)  # type: ignore[assignment]
    run_sync = _serialized(AsyncSession.run_sync)  # type: ignore[assignment]


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=SerialSession, expire_on_commit=False, autoflush=False)


class RequestSessions:
    """One lazily-opened session per request, closed by the middleware when the request ends.

    Handlers commit at the edge; anything left uncommitted is rolled back on close.
    """

    STATE_KEY = "vouch.session"

    def __init__(self, factory: async_sessionmaker[AsyncSession], *, name: str = "primary") -> None:
        self.factory = factory
        self.key = f"{self.STATE_KEY}.{name}"

    def get(self, state: dict[str, object]) -> AsyncSession:
        session = state.get(self.key)
        if session is None:
            session = self.factory()
            state[self.key] = session
        assert isinstance(session, AsyncSession)
        return session

    @classmethod
    async def close(cls, state: dict[str, object]) -> None:
        """Close every session the request opened (primary and replica)."""
        for key in [k for k in state if k.startswith(cls.STATE_KEY)]:
            session = state.pop(key, None)
            if isinstance(session, AsyncSession):
                await session.close()


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
    sqlstate = str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")
    if sqlstate.startswith(("08", "57P")):
        return True
    for inner in (getattr(exc, "orig", None), exc.__cause__, exc.__context__):
        if inner is not None and inner is not exc and is_database_unavailable(inner, _depth + 1):
            return True
    return False
