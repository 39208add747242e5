"""The click buffer keeps its clicks when the database is away in any of the ways it shows up:
a connection cut mid-statement (a bare ``DBAPIError``), an exhausted pool (SQLAlchemy's
``TimeoutError``), a refused connection (``OSError``). Only a real data error drops clicks."""

from __future__ import annotations

import contextlib

import pytest
from asyncpg import exceptions as pg_errors  # type: ignore[import-untyped]
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from vouch.attribution.clicks import ClickRecord
from vouch.core.clock import utcnow
from vouch.jobs.click_buffer import ClickBuffer


def record(n: int) -> ClickRecord:
    return ClickRecord(
        link_id=n,
        program_id=1,
        occurred_at=utcnow(),
        channel=None,
        utm={},
        ip_hash=None,
        user_agent=None,
        is_bot=False,
        bot_reason=None,
        visitor_id=None,
        referrer_host=None,
    )


def failing(exc: BaseException):
    calls = []

    @contextlib.asynccontextmanager
    async def sessionmaker():
        calls.append(1)
        raise exc
        yield  # pragma: no cover

    return sessionmaker, calls


@pytest.mark.parametrize(
    "exc",
    [
        DBAPIError("INSERT", {}, pg_errors.ConnectionDoesNotExistError("connection lost")),
        PoolTimeoutError("QueuePool limit of size 2 overflow 2 reached"),
        ConnectionRefusedError(111, "Connect call failed"),
    ],
    ids=["connection-lost", "pool-timeout", "refused"],
)
async def test_unavailable_database_requeues_every_click(exc):
    sessionmaker, calls = failing(exc)
    buffer = ClickBuffer(sessionmaker, max_size=100, interval=0.25)  # type: ignore[arg-type]
    for n in range(5):
        buffer.add(record(n))
    assert await buffer.flush() == 0
    assert await buffer.flush() == 0
    assert len(buffer) == 5
    assert [r.link_id for r in buffer.queued()] == [0, 1, 2, 3, 4]
    assert (buffer.dropped, buffer.recorded) == (0, 0)
    assert len(calls) == 2


async def test_a_data_error_is_salvaged_not_retried_forever():
    sessionmaker, calls = failing(DBAPIError("INSERT", {}, ValueError("bad row")))
    buffer = ClickBuffer(sessionmaker, max_size=100, interval=0.25)  # type: ignore[arg-type]
    for n in range(3):
        buffer.add(record(n))
    assert await buffer.flush() == 0
    assert len(buffer) == 0
    assert buffer.dropped == 3
    assert len(calls) == 2  # the write, then the salvage attempt
