"""Sessions: one per request, opened lazily and closed by the middleware; a session queues
concurrent callers (GraphQL resolves siblings at once). Transactions open and close at the
edge, never in the domain."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import greenlet_spawn

from vouch.core.raw_select import CONNECTION, READER, RawTransaction, fetch_raw, release_reader
from vouch.core.read_only import RAW_TRANSACTION, SyncSession

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

    sync_session_class = SyncSession
    HANDS_BACK_READER = True  # close() returns a read-only session's raw reader (raw_select)
    ENDS_RAW_TRANSACTIONS = True  # commit(), rollback() and close() end a RawTransaction

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._task_lock = _TaskLock()

    @_serialized
    async def fetch_raw(self, sql: str, args: list[Any], *, standalone: bool = False) -> list[Any]:
        return await fetch_raw(self, sql, args, standalone=standalone)

    def in_transaction(self) -> bool:
        return RAW_TRANSACTION in self.sync_session.info or self.sync_session.in_transaction()

    async def commit(self) -> None:
        """Commit: a raw transaction (``core.raw_select.RawTransaction``) with one COMMIT
        when only raw statements ran in it, else through the Session (which flushes, and
        commits the raw transaction too when the ORM joined it)."""
        await self._end(commit=True)

    async def rollback(self) -> None:
        await self._end(commit=False)

    async def _end(self, *, commit: bool) -> None:
        await self._task_lock.acquire()
        try:
            await self._end_locked(commit=commit)
        finally:
            self._task_lock.release()

    async def _end_locked(self, *, commit: bool) -> None:
        sync = self.sync_session
        raw: RawTransaction | None = sync.info.get(RAW_TRANSACTION)
        if raw is None:
            await (super().commit() if commit else super().rollback())
            return
        try:
            if sync.get_transaction() is not None:  # the ORM joined: the Session ends it
                await (super().commit() if commit else super().rollback())
            else:
                await raw.end(commit=commit)
        except BaseException:
            del sync.info[RAW_TRANSACTION]
            await greenlet_spawn(raw.discard)  # in an unknown state: the pool replaces it
            raise
        del sync.info[RAW_TRANSACTION]
        await greenlet_spawn(raw.release)

    async def close(self) -> None:
        sync = self.sync_session
        sync.info.pop(CONNECTION, None)
        if RAW_TRANSACTION in sync.info:
            await self.rollback()  # and back to the pool
        if READER in sync.info:
            # Handing the reader back may do IO (the pool closes an overflow connection).
            await greenlet_spawn(release_reader, sync)
        if sync.get_transaction() is not None:
            await super().close()  # a rollback to send: SQLAlchemy's greenlet
        elif sync.identity_map or sync.new:
            # No transaction: closing only detaches the objects, no IO, so no trip through
            # SQLAlchemy's greenlet (~9 µs, a tenth of a bare query's CPU).
            sync.close()
        # Otherwise nothing to close: no transaction holds a connection and no object is
        # attached (a request that only ran raw statements, or committed them).


def _serialize_every_coroutine(cls: type[SerialSession]) -> None:
    """Queue every awaitable public method of AsyncSession (not a list kept by hand, which
    missed ``get_one``, ``stream`` and ``connection``); the class's own methods keep theirs."""
    for name, member in vars(AsyncSession).items():
        if name.startswith("_") or name in vars(cls) or not inspect.iscoroutinefunction(member):
            continue
        setattr(cls, name, _serialized(member))


_serialize_every_coroutine(SerialSession)


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
