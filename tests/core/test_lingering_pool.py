"""The engine's pool keeps its overflow connections for a while (``core.engine.LingeringPool``):
under load that swings around ``pool_size`` no connection is closed and opened again, and the
queue pool's limits hold."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vouch.core.engine import LingeringPool, create_engine


@pytest.fixture
async def small(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2, pool_timeout=0.3)  # 2 + 2 overflow
    yield engine
    await engine.dispose()


def _events(engine: AsyncEngine) -> dict[str, int]:
    counts = {"connect": 0, "close": 0}
    pool = engine.sync_engine.pool

    def counter(name: str) -> Callable[..., None]:
        def count(*args: object) -> None:
            counts[name] += 1

        return count

    for name in counts:
        event.listen(pool, name, counter(name))
    return counts


async def _hold(engine: AsyncEngine, n: int) -> None:
    """Check out ``n`` connections at once, run a statement on each, hand them back."""
    async with contextlib.AsyncExitStack() as stack:
        held: list[AsyncConnection] = [
            await stack.enter_async_context(engine.connect()) for _ in range(n)
        ]
        for connection in held:
            assert await connection.scalar(text("SELECT 1")) == 1


async def test_overflow_connections_are_kept_and_reused(small: AsyncEngine) -> None:
    pool = small.sync_engine.pool
    assert isinstance(pool, LingeringPool)
    counts = _events(small)
    await _hold(small, 4)
    assert counts == {"connect": 4, "close": 0}
    assert pool.checkedout() == 0
    for _ in range(3):  # load swinging around pool_size: nothing closed, nothing opened
        await _hold(small, 3)
        await _hold(small, 1)
        await _hold(small, 4)
    assert counts == {"connect": 4, "close": 0}
    assert pool.checkedout() == 0


async def test_the_limits_hold_with_connections_lingering(small: AsyncEngine) -> None:
    await _hold(small, 4)
    with pytest.raises(PoolTimeoutError):
        await _hold(small, 5)
    pool = small.sync_engine.pool
    assert isinstance(pool, LingeringPool)
    assert pool.checkedout() == 0
    await _hold(small, 4)


async def test_idle_overflow_connections_are_closed_after_a_while(
    small: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = _events(small)
    await _hold(small, 4)
    monkeypatch.setattr(LingeringPool, "LINGER_SECONDS", 0.0)
    await _hold(small, 1)  # the pool's next use closes the two that lingered
    assert counts == {"connect": 4, "close": 2}
    await _hold(small, 2)
    assert counts == {"connect": 4, "close": 2}
    await _hold(small, 3)  # an overflow connection is opened again when needed
    assert counts["connect"] == 5


async def test_dispose_closes_lingering_connections(small: AsyncEngine) -> None:
    counts = _events(small)
    await _hold(small, 4)
    await small.dispose()
    assert counts == {"connect": 4, "close": 4}
    await _hold(small, 4)
    assert counts["connect"] == 8
