"""Prebuilt statements run in the session's transaction (``core.raw_select.run_raw``): a
driver call must not slip out of it into autocommit, or a business action written as several
raw statements would stop being one transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from tests.factories import make_program
from vouch.core.raw_select import run_raw
from vouch.core.sessions import SerialSession
from vouch.models import Program

pytestmark = pytest.mark.committing


async def _rename(session, program_id: int, name: str) -> None:
    await run_raw(session, "UPDATE programs SET name = $2 WHERE id = $1", [program_id, name])


async def test_a_raw_write_first_in_a_session_is_rolled_back_with_it(committing_engine):
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as s:
        program = await make_program(s, name="Before")
        await s.commit()
    async with factory() as s:
        await _rename(s, program.id, "Raw, then rolled back")
        await s.rollback()
    async with factory() as s:
        await _rename(s, program.id, "Raw")
        await s.execute(text("SELECT 1"))
        await _rename(s, program.id, "Raw twice, then rolled back")
        await s.rollback()
    async with factory() as s:
        assert await s.scalar(select(Program.name).where(Program.id == program.id)) == "Before"
        await _rename(s, program.id, "Committed")
        await s.commit()
    async with factory() as s:
        assert await s.scalar(select(Program.name).where(Program.id == program.id)) == "Committed"


async def test_raw_statements_share_one_transaction(committing_engine):
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as s:
        first = await run_raw(s, "SELECT txid_current()", [])
        second = await run_raw(s, "SELECT txid_current()", [])
        assert first[0][0] == second[0][0]
        await s.commit()


async def test_after_a_commit_or_a_rollback_raw_statements_run_in_a_new_transaction(
    committing_engine,
):
    """The session's connection is kept for its transaction (``raw_select._connection``); the
    next transaction asks again and is a transaction of its own."""
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as s:
        program = await make_program(s, name="Before")
        await s.commit()
    async with factory() as s:
        first = (await run_raw(s, "SELECT txid_current()", []))[0][0]
        await s.commit()
        second = (await run_raw(s, "SELECT txid_current()", []))[0][0]
        assert await s.scalar(text("SELECT txid_current()")) == second  # the session's own
        await _rename(s, program.id, "Rolled back")
        await s.rollback()
        third = (await run_raw(s, "SELECT txid_current()", []))[0][0]
        assert await s.scalar(select(Program.name).where(Program.id == program.id)) == "Before"
        await _rename(s, program.id, "Committed")
        await s.commit()
        assert len({first, second, third}) == 3
    async with factory() as s:
        assert await s.scalar(select(Program.name).where(Program.id == program.id)) == "Committed"


async def test_a_standalone_statement_first_in_a_session_stands_on_its_own(committing_engine):
    """A rate-limit hit counts even when what follows it is rolled back; after an open
    transaction, a standalone statement joins it like any other."""
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as s:
        program = await make_program(s, name="Before")
        await s.commit()
    async with factory() as s:
        await run_raw(
            s, "UPDATE programs SET name = $2 WHERE id = $1", [program.id, "Kept"], standalone=True
        )
        await _rename(s, program.id, "Rolled back")
        await s.rollback()
    async with factory() as s:
        assert await s.scalar(select(Program.name).where(Program.id == program.id)) == "Kept"
        await _rename(s, program.id, "Opened")
        await run_raw(
            s,
            "UPDATE programs SET name = $2 WHERE id = $1",
            [program.id, "Joined"],
            standalone=True,
        )
        await s.rollback()
    async with factory() as s:
        assert await s.scalar(select(Program.name).where(Program.id == program.id)) == "Kept"


async def test_flush_pending_flushes_only_a_session_with_changes(committing_engine):
    """Raw statements see the session's pending ORM changes once ``flush_pending`` ran; a
    clean session is not flushed at all (the hot write paths' usual case)."""
    from sqlalchemy import event

    from vouch.core.raw_select import flush_pending

    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as s:
        program = await make_program(s, name="Before")
        await s.commit()
    flushes: list[object] = []
    async with factory() as s:
        event.listen(s.sync_session, "before_flush", lambda *args: flushes.append(args))
        await flush_pending(s)
        assert flushes == []
        loaded = await s.get(Program, program.id)
        assert loaded is not None
        loaded.name = "Changed in the ORM"
        await flush_pending(s)
        assert len(flushes) == 1
        rows = await run_raw(s, "SELECT name FROM programs WHERE id = $1", [program.id])
        assert rows[0][0] == "Changed in the ORM"
        s.add(Program(slug="second", name="Second", currency="USD"))
        await flush_pending(s)
        assert len(flushes) == 2
        await flush_pending(s)
        assert len(flushes) == 2
        await s.rollback()


async def test_commit_if_begun_keeps_the_connection_after_standalone_statements(
    committing_engine,
):
    """After statements that ran in autocommit there is nothing to commit: the session keeps
    its connection; once a statement opened a transaction, it is committed."""
    from sqlalchemy import event

    from vouch.core.raw_select import commit_if_begun

    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as s:
        program = await make_program(s, name="Before")
        await s.commit()
    checkouts: list[object] = []

    def checked_out(*args: object) -> None:
        checkouts.append(args)

    pool = committing_engine.sync_engine.pool
    event.listen(pool, "checkout", checked_out)
    try:
        async with factory() as s:
            await run_raw(s, "SELECT 1", [], standalone=True)
            await commit_if_begun(s)
            await run_raw(s, "SELECT 1", [], standalone=True)
            assert len(checkouts) == 1  # a commit would have handed it back to the pool
    finally:
        event.remove(pool, "checkout", checked_out)
    async with factory() as s:
        await _rename(s, program.id, "In a transaction")  # opens one
        await commit_if_begun(s)
        async with factory() as check:
            name = await check.scalar(select(Program.name).where(Program.id == program.id))
            assert name == "In a transaction"
        await _rename(s, program.id, "Rolled back")
        await s.rollback()
    async with factory() as check:
        name = await check.scalar(select(Program.name).where(Program.id == program.id))
        assert name == "In a transaction"


async def test_closing_a_session_returns_its_connection_and_detaches_its_objects(
    committing_engine,
):
    """``SerialSession.close`` skips SQLAlchemy's close only when there is nothing to close:
    an open transaction is rolled back and its connection returned; loaded objects are
    detached."""
    from sqlalchemy import inspect

    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    pool = committing_engine.sync_engine.pool
    async with factory() as s:
        program = await make_program(s, name="Before")
        await s.commit()
    s = factory()
    await _rename(s, program.id, "Never committed")
    assert pool.checkedout() == 1
    await s.close()
    assert pool.checkedout() == 0
    s = factory()
    await run_raw(s, "SELECT 1", [])
    await s.commit()
    await s.close()
    assert pool.checkedout() == 0
    s = factory()
    loaded = await s.get(Program, program.id)
    await s.commit()
    await s.close()
    assert inspect(loaded).detached
    async with factory() as check:
        assert await check.scalar(select(Program.name).where(Program.id == program.id)) == "Before"


async def test_closing_a_session_hands_everything_back_with_as_few_greenlet_trips_as_it_can(
    committing_engine, monkeypatch
):
    """``SerialSession.close``: without a transaction closing is bookkeeping, done without
    SQLAlchemy's greenlet (a read-only request that read nothing); a read-only session's raw
    reader goes back to the pool in one trip; a session in a transaction is rolled back as
    before."""
    from sqlalchemy.ext.asyncio import session as asyncio_session
    from sqlalchemy.util import greenlet_spawn

    from vouch.core import sessions
    from vouch.core.raw_select import READER
    from vouch.core.read_only import autocommit_reads

    trips: list[object] = []
    real = greenlet_spawn  # the function vouch.core.sessions and AsyncSession call

    async def counted(fn, *args, **kwargs):
        trips.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(sessions, "greenlet_spawn", counted)
    monkeypatch.setattr(asyncio_session, "greenlet_spawn", counted)  # AsyncSession's own
    pool = committing_engine.sync_engine.pool
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    idle = pool.checkedout()

    s = factory()
    autocommit_reads(s)
    await s.close()
    assert trips == []
    assert pool.checkedout() == idle

    s = factory()
    autocommit_reads(s)
    assert (await run_raw(s, "SELECT 41 + 1", []))[0][0] == 42
    assert READER in s.sync_session.info
    assert pool.checkedout() == idle + 1
    await s.close()
    assert len(trips) == 1
    assert pool.checkedout() == idle
    assert READER not in s.sync_session.info

    async with factory() as s:
        program = await make_program(s, name="Kept")
        await s.commit()
    s = factory()
    await _rename(s, program.id, "Rolled back on close")
    assert s.in_transaction()
    assert pool.checkedout() == idle + 1
    trips.clear()
    await s.close()
    assert pool.checkedout() == idle
    assert not s.in_transaction()
    async with factory() as check:
        name = await check.scalar(select(Program.name).where(Program.id == program.id))
        assert name == "Kept"
