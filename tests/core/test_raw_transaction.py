"""A read-write session's raw statements in a transaction of their own
(``core.raw_select.RawTransaction``): one pooled connection, one BEGIN and one COMMIT, no
Session transaction, and the ORM joining it on the same connection when a request needs it.
Sessions here come from an engine, as in production (the rest of the suite binds them to a
test connection, which keeps the Session's transaction)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.factories import make_program
from vouch.core.raw_select import RawTransaction, run_raw
from vouch.core.read_only import RAW_TRANSACTION, autocommit_reads
from vouch.core.sessions import SerialSession
from vouch.models import Program

pytestmark = pytest.mark.committing

TXID = "SELECT txid_current()"


def _factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=SerialSession, expire_on_commit=False)


async def _program(factory: async_sessionmaker[AsyncSession], name: str = "Before") -> int:
    async with factory() as s:
        program = await make_program(s, name=name)
        await s.commit()
        return program.id


async def _name(factory: async_sessionmaker[AsyncSession], program_id: int) -> str | None:
    async with factory() as s:
        return await s.scalar(select(Program.name).where(Program.id == program_id))


async def _rename(session: AsyncSession, program_id: int, name: str) -> None:
    await run_raw(session, "UPDATE programs SET name = $2 WHERE id = $1", [program_id, name])


async def test_raw_statements_first_run_in_their_own_transaction_on_one_connection(
    committing_engine,
):
    factory = _factory(committing_engine)
    program_id = await _program(factory)
    pool = committing_engine.sync_engine.pool
    idle = pool.checkedout()
    s = factory()
    await _rename(s, program_id, "Committed")
    raw = s.sync_session.info[RAW_TRANSACTION]
    assert isinstance(raw, RawTransaction)
    assert s.sync_session.get_transaction() is None  # no Session transaction
    assert s.in_transaction()
    assert pool.checkedout() == idle + 1
    first = (await run_raw(s, TXID, []))[0][0]
    assert (await run_raw(s, TXID, []))[0][0] == first
    await s.commit()
    assert RAW_TRANSACTION not in s.sync_session.info
    assert not s.in_transaction()
    assert pool.checkedout() == idle
    assert await _name(factory, program_id) == "Committed"
    # a new transaction after the commit, rolled back on close
    await _rename(s, program_id, "Never committed")
    assert (await run_raw(s, TXID, []))[0][0] != first
    await s.close()
    assert pool.checkedout() == idle
    assert await _name(factory, program_id) == "Committed"


async def test_the_orm_joins_the_raw_transaction_on_its_connection(committing_engine):
    """An ORM statement after raw ones runs in their transaction (it sees their writes), and
    one commit or rollback ends both; the request never holds a second connection."""
    factory = _factory(committing_engine)
    program_id = await _program(factory)
    pool = committing_engine.sync_engine.pool
    idle = pool.checkedout()
    async with factory() as s:
        await _rename(s, program_id, "Raw")
        txid = (await run_raw(s, TXID, []))[0][0]
        assert await s.scalar(text(TXID)) == txid
        loaded = await s.get(Program, program_id)
        assert loaded is not None
        assert loaded.name == "Raw"
        assert pool.checkedout() == idle + 1
        loaded.currency = "EUR"  # flushed by the commit, with the raw rename
        s.add(Program(slug="joined", name="Joined", currency="USD"))
        await s.commit()
        assert pool.checkedout() == idle
    async with factory() as s:
        program = await s.get(Program, program_id)
        assert program is not None
        assert (program.name, program.currency) == ("Raw", "EUR")
        assert await s.scalar(select(Program.id).where(Program.slug == "joined")) is not None
    async with factory() as s:
        await _rename(s, program_id, "Rolled back")
        await s.execute(
            text("UPDATE programs SET currency = 'GBP' WHERE id = :i"), {"i": program_id}
        )
        await s.rollback()
        assert pool.checkedout() == idle
        # the next transaction is raw again, not the ORM's
        await _rename(s, program_id, "Raw again")
        assert s.sync_session.get_transaction() is None
        await s.rollback()
    async with factory() as s:
        program = await s.get(Program, program_id)
        assert program is not None
        assert (program.name, program.currency) == ("Raw", "EUR")


async def test_after_the_orm_ends_it_on_its_own_raw_statements_begin_again(committing_engine):
    """``async with session.begin()`` after raw statements commits them with the ORM's; the
    raw statements after it are a transaction of their own on the same connection, not
    autocommit."""
    factory = _factory(committing_engine)
    program_id = await _program(factory)
    pool = committing_engine.sync_engine.pool
    idle = pool.checkedout()
    s = factory()
    await _rename(s, program_id, "First")
    first = (await run_raw(s, TXID, []))[0][0]
    async with s.begin():
        assert await s.scalar(text(TXID)) == first
    assert await _name(factory, program_id) == "First"
    await _rename(s, program_id, "Second")
    second = (await run_raw(s, TXID, []))[0][0]
    assert second != first
    await run_raw(s, "SELECT 1", [])
    assert (await run_raw(s, TXID, []))[0][0] == second
    assert pool.checkedout() == idle + 1
    await s.rollback()
    assert pool.checkedout() == idle
    assert await _name(factory, program_id) == "First"
    await s.close()


async def test_a_failed_statement_is_rolled_back_and_the_connection_reused(committing_engine):
    factory = _factory(committing_engine)
    program_id = await _program(factory)
    pool = committing_engine.sync_engine.pool
    idle = pool.checkedout()
    async with factory() as s:
        await _rename(s, program_id, "Undone")
        with pytest.raises(Exception, match="duplicate key"):
            await run_raw(
                s, "INSERT INTO programs SELECT * FROM programs WHERE id = $1", [program_id]
            )
        await s.rollback()
        assert pool.checkedout() == idle
        await _rename(s, program_id, "After")
        await s.commit()
    assert await _name(factory, program_id) == "After"


async def test_a_joined_commit_whose_flush_fails_undoes_everything(committing_engine):
    """The ORM joined, its flush fails at commit: the error reaches the caller, nothing of the
    transaction is kept, the connection does not stay checked out, and the session goes on."""
    factory = _factory(committing_engine)
    program_id = await _program(factory)
    async with factory() as s:
        slug = (await s.get(Program, program_id)).slug  # type: ignore[union-attr]
        await s.commit()
    pool = committing_engine.sync_engine.pool
    idle = pool.checkedout()
    async with factory() as s:
        await _rename(s, program_id, "Undone")
        s.add(Program(slug=slug, name="Same slug", currency="USD"))
        with pytest.raises(IntegrityError):
            await s.commit()
        await s.rollback()
        assert pool.checkedout() == idle
        await _rename(s, program_id, "After")
        await s.commit()
    assert await _name(factory, program_id) == "After"
    assert pool.checkedout() == idle


async def test_a_commit_that_fails_discards_the_connection(committing_engine, monkeypatch):
    """A COMMIT or ROLLBACK that fails leaves the connection in an unknown state: it is not
    handed back for reuse, and the caller sees the error."""
    factory = _factory(committing_engine)
    program_id = await _program(factory)
    pool = committing_engine.sync_engine.pool
    idle = pool.checkedout()

    async def fails(self: RawTransaction, *, commit: bool) -> None:
        raise ConnectionResetError("lost during COMMIT")

    s = factory()
    await _rename(s, program_id, "Lost")
    driver = s.sync_session.info[RAW_TRANSACTION].driver
    monkeypatch.setattr(RawTransaction, "end", fails)
    with pytest.raises(ConnectionResetError):
        await s.commit()
    monkeypatch.undo()
    assert driver.is_closed()
    assert pool.checkedout() == idle
    assert RAW_TRANSACTION not in s.sync_session.info
    await s.close()
    assert await _name(factory, program_id) == "Before"


async def test_a_request_cancelled_mid_statement_hands_its_connection_back(committing_engine):
    factory = _factory(committing_engine)
    pool = committing_engine.sync_engine.pool
    idle = pool.checkedout()
    s = factory()
    statement = asyncio.ensure_future(run_raw(s, "SELECT pg_sleep(5)", []))
    await asyncio.sleep(0.3)
    statement.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await statement
    with contextlib.suppress(Exception):  # what asyncpg says after a cancel varies
        await s.close()
    assert pool.checkedout() == idle
    async with factory() as fresh:
        assert (await run_raw(fresh, "SELECT 1", []))[0][0] == 1
        await fresh.commit()


async def test_only_where_nothing_needs_a_connection_per_statement(committing_engine, conn):
    """Not for a session bound to a connection (tests), a read-only session (its reader), a
    session whose ORM transaction came first, a standalone statement that comes first, or an
    engine with statement listeners."""
    factory = _factory(committing_engine)

    async def raw_after(session: AsyncSession, *, standalone: bool = False) -> bool:
        await run_raw(session, "SELECT 1", [], standalone=standalone)
        opened = RAW_TRANSACTION in session.sync_session.info
        await session.close()
        return opened

    assert await raw_after(factory())
    bound = async_sessionmaker(conn, class_=SerialSession, join_transaction_mode="create_savepoint")
    assert not await raw_after(bound())
    reading = factory()
    autocommit_reads(reading)
    assert not await raw_after(reading)
    orm_first = factory()
    await orm_first.execute(text("SELECT 1"))
    assert not await raw_after(orm_first)
    assert not await raw_after(factory(), standalone=True)
    listened = committing_engine.sync_engine

    def listener(*args: object) -> None:
        pass

    event.listen(listened, "before_cursor_execute", listener)
    try:
        assert not await raw_after(factory())
    finally:
        event.remove(listened, "before_cursor_execute", listener)
