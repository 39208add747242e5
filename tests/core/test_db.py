"""The request path's database plumbing, against the real server: dead pooled connections are
replaced without a ping, read-only sessions run without BEGIN/ROLLBACK, and prebuilt raw
statements bind, observe and refuse like SQLAlchemy's own."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from sqlalchemy import Integer, bindparam, column, event, literal, select, table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from vouch.access.api_keys import create_api_key
from vouch.core.engine import create_engine
from vouch.core.raw_select import RawSelect
from vouch.core.read_only import autocommit_reads
from vouch.core.sessions import SerialSession, session_factory
from vouch.models import ApiKey
from vouch.models.enums import Scope

BACKEND_PID = RawSelect(select(text("pg_backend_pid()")))


async def _terminate(engine: AsyncEngine, pid: int) -> None:
    """End a backend as an admin or a restart would, and wait until it is gone (its socket
    closed), not a fixed time: pg_terminate_backend only signals it."""
    # autocommit: pg_stat_activity is read once per transaction, so each poll needs its own
    async with engine.connect() as conn:
        admin = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        for _ in range(200):
            if not (await admin.execute(alive, {"pid": pid})).scalar():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"backend {pid} still alive")
    await asyncio.sleep(0.05)  # the event loop reads the closed socket


async def test_a_pooled_connection_the_server_closed_is_replaced_before_use(
    database_url: str, engine: AsyncEngine
) -> None:
    small = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(small)() as s:
            first = (await BACKEND_PID.fetch(s, {}))[0][0]
        await _terminate(engine, first)  # the socket's close reaches the idle pooled connection
        # No ping, no error: the checkout notices the closed socket and connects anew.
        async with session_factory(small)() as s:
            second = (await BACKEND_PID.fetch(s, {}))[0][0]
            assert (await s.execute(text("SELECT 1"))).scalar() == 1
        assert second != first
    finally:
        await small.dispose()


async def test_autocommit_reads_run_each_statement_on_its_own(database_url: str) -> None:
    eng = create_engine(database_url, pool_size=1)
    now = text("SELECT now()")
    try:
        async with session_factory(eng)() as s:
            assert autocommit_reads(s)
            first = (await s.execute(now)).scalar()
            await asyncio.sleep(0.01)
            second = (await s.execute(now)).scalar()
            assert first != second  # no transaction: now() is each statement's own time
        async with session_factory(eng)() as s:  # the pool hands out a normal connection again
            first = (await s.execute(now)).scalar()
            await asyncio.sleep(0.01)
            assert (await s.execute(now)).scalar() == first  # one transaction, one now()
    finally:
        await eng.dispose()


async def test_a_read_only_session_refuses_to_write(database_url: str) -> None:
    from sqlalchemy import update

    from vouch.core.read_only import ReadOnlyRequestWrote
    from vouch.models import Program

    eng = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(eng)() as s:
            assert autocommit_reads(s)
            with pytest.raises(ReadOnlyRequestWrote):
                await s.execute(update(Program).values(name="x"))
            s.add(Program(slug="never-written", name="Never"))
            with pytest.raises(ReadOnlyRequestWrote):
                await s.flush()
        async with session_factory(eng)() as s:  # nothing was written
            found = await s.execute(
                text("SELECT count(*) FROM programs WHERE slug = 'never-written'")
            )
            assert found.scalar() == 0
    finally:
        await eng.dispose()


async def test_autocommit_reads_leaves_open_transactions_and_test_connections_alone(
    database_url: str, sessionmaker: Any
) -> None:
    from vouch.core.read_only import ReadOnlyRequestWrote
    from vouch.models import Program

    async with sessionmaker() as session:
        assert not autocommit_reads(session)  # bound to a connection (the tests' rollback)
        session.add(Program(slug="never-written", name="Never"))
        with pytest.raises(ReadOnlyRequestWrote):  # but read-only all the same
            await session.flush()
    eng = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(eng)() as s:
            await s.execute(text("SELECT 1"))
            assert not autocommit_reads(s)  # already inside a transaction: keep it
    finally:
        await eng.dispose()


async def test_raw_select_binds_by_name_and_is_seen_by_statement_listeners(
    conn: Any, session: Any
) -> None:
    v = column("v", Integer)
    series = (
        select(v)
        .select_from(text("generate_series(1, 10) AS n(v)"))
        .where(v > bindparam("low"))
        .where(v != literal(7))
        .order_by(v)
        .limit(bindparam("limit"))
    )
    raw = RawSelect(series)
    seen: list[str] = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731
    event.listen(conn.sync_connection, "before_cursor_execute", listener)
    try:
        rows = await raw.fetch(session, {"low": 4, "limit": 4})
    finally:
        event.remove(conn.sync_connection, "before_cursor_execute", listener)
    assert [r[0] for r in rows] == [5, 6, 8, 9]  # the literal 7 was bound from the statement
    assert seen[-1:] == [raw.sql]  # (after the session's savepoint)
    with pytest.raises(KeyError):
        await raw.fetch(session, {"low": 4})


def test_raw_select_refuses_expanding_parameters() -> None:
    numbers = table("n", column("v"))
    with pytest.raises(ValueError, match="expanding"):
        RawSelect(select(numbers.c.v).where(numbers.c.v.in_(bindparam("values", expanding=True))))


NOW = RawSelect(select(text("now()")))


async def test_raw_reads_of_a_read_only_session_hold_one_pooled_connection(
    database_url: str,
) -> None:
    eng = create_engine(database_url, pool_size=1)
    pool = eng.sync_engine.pool
    try:
        async with session_factory(eng)() as s:
            autocommit_reads(s)
            pid = (await BACKEND_PID.fetch(s, {}))[0][0]
            first = (await NOW.fetch(s, {}))[0][0]
            await asyncio.sleep(0.01)
            assert (await NOW.fetch(s, {}))[0][0] != first  # no transaction around them
            assert (await BACKEND_PID.fetch(s, {}))[0][0] == pid  # the same connection
            assert pool.checkedout() == 1  # type: ignore[attr-defined]
            assert not s.in_transaction()
            # An ORM statement takes its connection only after the raw reads gave theirs back.
            assert (await s.execute(text("SELECT pg_backend_pid()"))).scalar() == pid
            assert pool.checkedout() == 1  # type: ignore[attr-defined]
            assert (await BACKEND_PID.fetch(s, {}))[0][0] == pid  # now on the session's
            assert pool.checkedout() == 1  # type: ignore[attr-defined]
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
        async with session_factory(eng)() as s:  # closed after raw reads only: returned too
            autocommit_reads(s)
            await asyncio.gather(*(BACKEND_PID.fetch(s, {}) for _ in range(5)))
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await eng.dispose()


async def test_raw_reads_go_through_sqlalchemy_when_the_engine_has_statement_listeners(
    database_url: str,
) -> None:
    eng = create_engine(database_url, pool_size=1)
    seen: list[str] = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731
    event.listen(eng.sync_engine, "before_cursor_execute", listener)
    try:
        async with session_factory(eng)() as s:
            autocommit_reads(s)
            await BACKEND_PID.fetch(s, {})
        assert seen == [BACKEND_PID.sql]
    finally:
        await eng.dispose()


async def test_a_read_only_request_whose_connection_dies_reports_the_database_unavailable(
    database_url: str, engine: AsyncEngine
) -> None:
    from vouch.core.engine import is_database_unavailable

    small = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(small)() as s:
            autocommit_reads(s)
            pid = (await BACKEND_PID.fetch(s, {}))[0][0]
            await _terminate(engine, pid)
            with pytest.raises(Exception) as failure:
                await BACKEND_PID.fetch(s, {})
            assert is_database_unavailable(failure.value)  # the app answers 503, not a bug
        async with session_factory(small)() as s:  # the next request: a fresh connection
            autocommit_reads(s)
            assert (await BACKEND_PID.fetch(s, {}))[0][0] != pid
    finally:
        await small.dispose()


async def test_serial_session_queues_every_coroutine_method(database_url: str) -> None:
    """GraphQL resolves siblings concurrently on one request session: every awaitable method of
    the session (``get_one``, ``stream``, ``connection`` … not only a fixed list) waits its turn
    instead of failing with asyncpg's "another operation is in progress"."""
    unwrapped = [
        name
        for name, member in vars(AsyncSession).items()
        if not name.startswith("_")
        and inspect.iscoroutinefunction(member)
        and getattr(SerialSession, name) is member
    ]
    assert unwrapped == []
    eng = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(eng)() as s:  # never committed: rolled back on close
            key = (await create_api_key(s, name="serial", scopes=[Scope.READ])).key
            await s.flush()
            found = await asyncio.gather(
                *(s.get_one(ApiKey, key.id, populate_existing=True) for _ in range(5))
            )
            assert {k.id for k in found} == {key.id}
    finally:
        await eng.dispose()
