"""Engine and session factory. Transactions open and close at the edge, never in the domain."""

from __future__ import annotations

import asyncio
import functools
import inspect
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import asyncpg
from sqlalchemy import event
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import Select
from sqlalchemy.util import greenlet_spawn


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
_PGBOUNCER: weakref.WeakSet[Engine] = weakref.WeakSet()


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
        max_overflow=max(2, pool_size // 2),
        pool_timeout=pool_timeout,
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
        _PGBOUNCER.add(engine.sync_engine)
    return engine


def _discard_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pessimistic disconnect handling without a round trip: a pooled connection whose socket
    the server closed is replaced before anyone uses it (the pool retries the checkout)."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


# engine -> the same engine with AUTOCOMMIT (it shares the pool); weak, so a dropped engine's
# entry goes with it
READ_ONLY = "vouch.read_only"


class ReadOnlyRequestWrote(RuntimeError):
    """A read-only request (a GraphQL query) tried to write: a bug, refused before anything is
    sent, since without a transaction the write would not be undone with the request."""


class _SyncSession(Session):
    pass


@event.listens_for(_SyncSession, "do_orm_execute")
def _refuse_write_statements(state: ORMExecuteState) -> None:
    if state.session.info.get(READ_ONLY) and (
        state.is_insert or state.is_update or state.is_delete
    ):
        raise ReadOnlyRequestWrote(f"a read-only request tried to run {state.statement!s:.60}")


@event.listens_for(_SyncSession, "before_flush")
def _refuse_flushes(session: Session, context: Any, instances: Any) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise ReadOnlyRequestWrote("a read-only request tried to flush changes")


_AUTOCOMMIT: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def autocommit_reads(session: AsyncSession) -> bool:
    """Run this session's next statements on an autocommit connection: no BEGIN and no
    ROLLBACK round trip around a read-only request.

    Under READ COMMITTED every statement takes its own snapshot whether or not a transaction
    is open, so a read-only request sees exactly what it would see inside one. Only for
    requests that cannot write (GraphQL queries); a session that already holds a transaction,
    or is bound to a connection (tests), keeps its transaction. Either way the session refuses
    writes from here on. Returns whether it switched to autocommit."""
    sync = session.sync_session
    sync.info[READ_ONLY] = True  # from here on a write is a bug: see _refuse_write_statements
    bind = sync.bind
    if sync.in_transaction() or not isinstance(bind, Engine) or bind in _PGBOUNCER:
        # Behind PgBouncer a statement outside a transaction may prepare on one server
        # connection and execute on another: reads keep their transaction there.
        return False
    autocommit = _AUTOCOMMIT.get(bind)
    if autocommit is None:
        autocommit = _AUTOCOMMIT[bind] = bind.execution_options(isolation_level="AUTOCOMMIT")
    sync.bind = autocommit
    return True


class RawSelect:
    """A prebuilt SELECT compiled once for asyncpg and run on the session's own connection,
    returning asyncpg records (index them, or slice them into tuples).

    For the hottest read paths only (a GraphQL page of 50 rows): there SQLAlchemy's result
    machinery costs more CPU than PostgreSQL spends on the query. Bind parameters are passed
    by name; ``expanding`` (IN-list) parameters are not supported: use ``= ANY(:array)``.
    Values come back as asyncpg decodes them: a column type with its own Python-side result
    processing (a TypeDecorator; the models have none) would not be applied."""

    _dialect = PGDialect_asyncpg(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        compiled = statement.compile(dialect=self._dialect)
        if any(p.expanding for p in compiled.binds.values()):
            raise ValueError("RawSelect does not support expanding parameters")
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values bound in the statement itself (literals), used when params do not name them.
        self.bound = {n: b.value for n, b in compiled.binds.items() if b.value is not None}

    async def fetch(self, session: AsyncSession, params: dict[str, Any]) -> list[Any]:
        args = [params[name] if name in params else self.bound[name] for name in self.names]
        if isinstance(session, SerialSession):
            return await session.fetch_raw(self.sql, args)
        return await _fetch_raw(session, self.sql, args)


async def _fetch_raw(session: AsyncSession, sql: str, args: list[Any]) -> list[Any]:
    reader = await _reader(session)
    if reader is not None:
        return await reader.driver_connection.fetch(sql, *args)  # type: ignore[no-any-return]
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    sync = connection.sync_connection
    # Statement listeners (SQL logging, tracing, the tests' statement counter) see raw
    # statements as they see SQLAlchemy's own.
    observed = sync is not None and (sync._has_events or sync.engine._has_events)
    if observed:
        assert sync is not None
        sync.dispatch.before_cursor_execute(sync, None, sql, args, None, False)
    records: list[Any] = await driver.fetch(sql, *args)
    if observed:
        assert sync is not None
        sync.dispatch.after_cursor_execute(sync, None, sql, args, None, False)
    return records


_READER = "vouch.reader"


async def _reader(session: AsyncSession) -> Any:
    """The pooled connection a read-only session's raw statements run on, or None.

    A read-only (autocommit) session that has not begun an ORM transaction needs no Session
    transaction, no Connection object and no reset for its raw statements: they take a
    connection straight from the pool (one per session, returned when the session closes or
    when an ORM statement begins, so a request never holds two). The Session's machinery around
    one driver call cost the widget's request more CPU than the driver call itself. Skipped
    when the engine has statement listeners (logging, tracing): those need a Connection; pool
    events (connect, checkout, checkin) run as usual."""
    sync = session.sync_session
    reader = sync.info.get(_READER)
    if reader is not None:
        return reader
    bind = sync.bind
    if (
        not isinstance(session, SerialSession)  # its close() hands the reader back
        or not sync.info.get(READ_ONLY)
        or sync.in_transaction()
        or not isinstance(bind, Engine)
        or bind in _PGBOUNCER
        or bind.dispatch.before_cursor_execute
        or bind.dispatch.after_cursor_execute
    ):
        return None
    reader = sync.info[_READER] = await greenlet_spawn(bind.raw_connection)
    return reader


def _release_reader(session: Session) -> None:
    reader = session.info.pop(_READER, None)
    if reader is not None:
        reader.close()  # back to the pool; autocommit, so no ROLLBACK to send


@event.listens_for(_SyncSession, "after_transaction_create")
def _hand_back_reader(session: Session, transaction: Any) -> None:
    """An ORM statement is beginning: it takes its own connection, so give the reader back."""
    if transaction.parent is None:
        _release_reader(session)


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

    sync_session_class = _SyncSession

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._task_lock = _TaskLock()

    @_serialized
    async def fetch_raw(self, sql: str, args: list[Any]) -> list[Any]:
        return await _fetch_raw(self, sql, args)

    async def close(self) -> None:
        if _READER in self.sync_session.info:
            await greenlet_spawn(_release_reader, self.sync_session)
        await super().close()


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
