"""Prebuilt SELECTs for the hottest read paths, compiled once for asyncpg, and the runner of
every prebuilt statement (``run_raw``): on the session's own connection, or, for a read-only
session, a pooled connection of its own (``_reader``), or, for a read-write session whose raw
statements come first, a pooled connection with a transaction of their own
(``RawTransaction``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.util import greenlet_spawn

from vouch.core.engine import PGBOUNCER_ENGINES
from vouch.core.read_only import RAW_TRANSACTION, READ_ONLY, SyncSession


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

    async def fetch(
        self, session: AsyncSession, params: dict[str, Any], *, standalone: bool = False
    ) -> list[Any]:
        """``standalone``: a read that stands on its own (see ``run_raw``)."""
        args = [params[name] if name in params else self.bound[name] for name in self.names]
        return await run_raw(session, self.sql, args, standalone=standalone)


async def run_raw(
    session: AsyncSession, sql: str, args: list[Any], *, standalone: bool = False
) -> list[Any]:
    """Run a prebuilt statement (``$n`` placeholders, any kind: the hot write paths' INSERT …
    RETURNING and CTEs too) on the session's connection, in its transaction, and return the
    asyncpg records. A SerialSession queues it behind the session's other work. JSON and JSONB
    parameters are passed as JSON text; values come back as asyncpg decodes them.

    ``standalone``: a single statement that is its own business action and is meant to be
    committed on its own (a rate-limit hit), or a read that needs no transaction around it (a
    landing's lookup before a claim): when no transaction is open yet it runs in autocommit,
    saving the BEGIN and COMMIT round trips; inside an open transaction it joins it, as any
    statement does."""
    serial = getattr(session, "fetch_raw", None)
    if serial is not None:
        return await serial(sql, args, standalone=standalone)  # type: ignore[no-any-return]
    return await fetch_raw(session, sql, args, standalone=standalone)


async def fetch_raw(
    session: AsyncSession, sql: str, args: list[Any], *, standalone: bool = False
) -> list[Any]:
    info = session.sync_session.info
    raw_transaction = info.get(RAW_TRANSACTION)
    if raw_transaction is None and not standalone and not info.get(READ_ONLY):
        raw_transaction = await RawTransaction.open(session)
    if raw_transaction is not None:
        if raw_transaction.adapted._transaction is None and not standalone:
            # The ORM joined it and its Session committed or rolled back on its own (``async
            # with session.begin()``): the next statements are a transaction of their own.
            await _begin(raw_transaction.adapted)
        return await raw_transaction.driver.fetch(sql, *args)  # type: ignore[no-any-return]
    reader = await _reader(session)
    if reader is not None:
        return await reader.driver_connection.fetch(sql, *args)  # type: ignore[no-any-return]
    raw, sync = await _connection(session)
    driver = raw.driver_connection
    assert driver is not None
    if not standalone:
        await _begin(raw.dbapi_connection)
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


async def flush_pending(session: AsyncSession) -> None:
    """Flush the session's pending ORM changes, if it has any, before raw statements that
    must see them (sessions do not autoflush). A clean session, the usual case on the hot
    write paths, costs no flush (each is a trip through SQLAlchemy's greenlet)."""
    if _has_pending(session.sync_session):
        await session.flush()


async def commit_if_begun(session: AsyncSession) -> None:
    """Commit the session's transaction if anything opened one on the server. When only
    standalone statements ran (in autocommit) there is nothing to commit: the session keeps
    its connection for what follows, with no pool check-in and check-out in between (a
    claim's rate-limit hit, then the claim). Anything it cannot tell is committed."""
    sync = session.sync_session
    kept = _kept_connection(sync)
    if kept is None or not _outside_transaction(kept[0].dbapi_connection) or _has_pending(sync):
        await session.commit()


def _has_pending(sync: Session) -> bool:
    """Whether the session holds ORM changes not yet flushed."""
    return bool(sync.identity_map.check_modified() or sync.new or sync.deleted)


def _kept_connection(sync: Session) -> tuple[Any, Any] | None:
    """(pooled connection, sync Connection) kept for the session's current transaction."""
    cached = sync.info.get(CONNECTION)
    if cached is not None and cached[0] is sync.get_transaction():
        return cached[1], cached[2]
    return None


def _outside_transaction(adapted: Any) -> bool:
    """Whether the driver adapter has no server transaction open (SQLAlchemy's asyncpg adapter
    opens one lazily; an autocommit connection never does)."""
    return getattr(adapted, "_transaction", True) is None


CONNECTION = "vouch.raw_connection"


async def _connection(session: AsyncSession) -> tuple[Any, Any]:
    """The session's pooled connection and its sync Connection, for its current transaction.

    Asked once per transaction and kept in ``session.info`` with the transaction it belongs
    to: ``session.connection()`` costs two greenlet switches, and a hot write runs eight to
    ten raw statements in one transaction. A new transaction (after a commit or a rollback)
    is a different object, so it asks again."""
    sync_session = session.sync_session
    kept = _kept_connection(sync_session)
    if kept is not None:
        return kept
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    sync = connection.sync_connection
    sync_session.info[CONNECTION] = (sync_session.get_transaction(), raw, sync)
    return raw, sync


async def _begin(adapted: Any) -> None:
    """Open the session's transaction if no statement has yet. SQLAlchemy's asyncpg adapter
    sends BEGIN lazily, on its own first statement: a driver call made first would otherwise
    run in autocommit, and the statements after it in a transaction of their own. An
    autocommit connection (read-only requests) stays as it is."""
    if _outside_transaction(adapted):
        async with adapted._execute_mutex:
            if adapted._transaction is None:
                await adapted._start_transaction()


class RawTransaction:
    """A read-write session's transaction on a pooled connection of its own, opened by its
    first raw statement, without SQLAlchemy's Session transaction machinery.

    The hot writes (a keyed conversion: seven prebuilt statements and no ORM) ran every
    statement through the Session's transaction: a SessionTransaction and a Connection to
    open it, the Session's commit and the Connection's close around the one COMMIT, each a
    trip through SQLAlchemy's greenlet (without them SQLAlchemy's share of a conversion's
    worker CPU under py-spy went from 4.9% to 3.2%: bench/RESULTS.md, twelfth session).
    Here the first raw statement of a session with no ORM transaction takes a connection
    from the engine's pool (the same pool, so the same limits), sends BEGIN, and every
    later raw statement of the session runs on it (``run_raw``); ``SerialSession``'s
    ``commit``, ``rollback`` and ``close`` end it with one COMMIT or ROLLBACK and hand the
    connection back.

    ORM statements of the same session join it: ``SyncSession.get_bind`` answers a
    Connection around this transaction's pooled connection (``routed``), on which the
    Session begins its own transaction object without sending anything (the driver's
    transaction is already open), so ORM and raw statements share one connection and one
    transaction; the Session's commit or rollback then ends it (``SerialSession``).

    Only where nothing needs a Connection for each statement: a session bound to an engine
    (tests bind theirs to a connection and keep the Session's transaction), not behind
    PgBouncer, and no statement listeners (SQL logging, tracing) on the engine. A statement
    that stands on its own (``standalone``) and comes first keeps running in autocommit on
    the Session's connection (a claim's rate-limit hit), and then the Session's transaction
    carries the request as before."""

    __slots__ = ("adapted", "connection", "driver", "engine", "pooled")

    def __init__(self, engine: Engine, pooled: Any) -> None:
        self.engine = engine
        self.pooled = pooled  # the pool's connection (a _ConnectionFairy)
        self.adapted = pooled.dbapi_connection  # SQLAlchemy's adapter, which keeps the BEGIN
        self.driver = pooled.driver_connection  # asyncpg's
        self.connection: Connection | None = None  # made by routed(), for ORM statements

    @classmethod
    async def open(cls, session: AsyncSession) -> RawTransaction | None:
        """Begin one for ``session`` if it may have one (see the class), else None."""
        sync = session.sync_session
        bind = sync.bind
        if (
            sync.get_transaction() is not None
            or not getattr(session, "ENDS_RAW_TRANSACTIONS", False)  # SerialSession's methods do
            or sync.info.get(READ_ONLY)
            or not isinstance(bind, Engine)
            or bind in PGBOUNCER_ENGINES
            or bind.dispatch.before_cursor_execute
            or bind.dispatch.after_cursor_execute
        ):
            return None
        raw = cls(bind, await greenlet_spawn(bind.raw_connection))
        try:
            await _begin(raw.adapted)
            if raw.adapted._transaction is None:  # an autocommit connection: never here
                raise RuntimeError("a raw transaction's connection did not begin")
        except BaseException:
            await greenlet_spawn(raw.release)
            raise
        sync.info[RAW_TRANSACTION] = raw
        return raw

    def routed(self) -> Connection:
        """A Connection on this transaction's pooled connection, for the ORM (made once)."""
        if self.connection is None:
            self.connection = Connection(self.engine, connection=self.pooled)
        return self.connection

    async def end(self, *, commit: bool) -> None:
        """COMMIT or ROLLBACK on the driver, unless the ORM's Session already ended it."""
        adapted = self.adapted
        transaction = adapted._transaction
        if transaction is not None:
            async with adapted._execute_mutex:
                # The adapter forgets the transaction whether or not the call succeeds, as
                # its own commit and rollback do.
                await adapted._call_and_discard(
                    transaction.commit if commit else transaction.rollback
                )

    def release(self) -> None:
        """Hand the connection back to the pool (in SQLAlchemy's greenlet: the pool may close
        an overflow connection). A connection the server closed is discarded at checkout."""
        if self.connection is not None:
            self.connection.close()
        else:
            self.pooled.close()

    def discard(self) -> None:
        """Close the connection instead (after a COMMIT or ROLLBACK that failed, or was
        cancelled: its state is unknown); the pool opens a new one when it needs one."""
        if self.connection is not None:
            self.connection.invalidate()
            self.connection.close()
        else:
            self.pooled.invalidate()


READER = "vouch.reader"


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
    reader = sync.info.get(READER)
    if reader is not None:
        return reader
    bind = sync.bind
    if (
        not getattr(session, "HANDS_BACK_READER", False)  # a SerialSession's close() does
        or not sync.info.get(READ_ONLY)
        or sync.in_transaction()
        or not isinstance(bind, Engine)
        or bind in PGBOUNCER_ENGINES
        or bind.dispatch.before_cursor_execute
        or bind.dispatch.after_cursor_execute
    ):
        return None
    reader = sync.info[READER] = await greenlet_spawn(bind.raw_connection)
    return reader


def release_reader(session: Session) -> None:
    reader = session.info.pop(READER, None)
    if reader is not None:
        reader.close()  # back to the pool; autocommit, so no ROLLBACK to send


@event.listens_for(SyncSession, "after_transaction_create")
def _hand_back_reader(session: Session, transaction: Any) -> None:
    """An ORM statement is beginning: it takes its own connection, so give the reader back."""
    if transaction.parent is None:
        release_reader(session)
