"""The database being away is a fast 503 with Retry-After, never a hang or a bare 500."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker

from vouch.core.engine import create_engine
from vouch.core.sessions import SerialSession
from vouch.web.app import Overrides, create_app


async def test_unreachable_database_is_503_with_retry_after(settings):
    # A port nothing listens on: connection refused at once.
    engine = create_engine("postgresql://vouch@127.0.0.1:9/vouch", pool_size=1)
    app = create_app(
        settings,
        Overrides(
            sessionmaker=async_sessionmaker(engine, class_=SerialSession, expire_on_commit=False)
        ),
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.get("/readyz")
    await engine.dispose()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


async def test_handlers_map_database_errors_to_503_and_bugs_to_500(app):
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout
    from starlette.routing import Route

    async def db_down(request):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

    async def pool_exhausted(request):
        raise PoolTimeout("QueuePool limit reached")

    async def bug(request):
        raise RuntimeError("boom")

    app.router.routes.extend(
        [Route("/t/db", db_down), Route("/t/pool", pool_exhausted), Route("/api/t/bug", bug)]
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        down = await c.get("/t/db")
        pool = await c.get("/t/pool")
        crash = await c.get("/api/t/bug")
    assert (down.status_code, down.headers["retry-after"]) == (503, "5")
    assert (pool.status_code, pool.headers["retry-after"]) == (503, "5")
    assert crash.status_code == 500
    assert crash.json()["error"] == "internal_error"
    assert "boom" not in crash.text
