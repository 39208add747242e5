"""Reports read from DATABASE_REPLICA_URL when one is configured; everything else from the
primary. The "replica" here is a second, empty database, so the routing is visible."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker

from tests.api.graphql import gql
from tests.attribution.factories import make_referral
from tests.factories import make_advocate, make_api_key, make_program
from vouch.core.engine import create_engine
from vouch.core.migrations import alembic_config
from vouch.core.sessions import SerialSession
from vouch.web.app import Overrides, create_app


@pytest.fixture(scope="module")
def replica_url(database_url: str) -> str:
    from alembic import command

    url = make_url(database_url)
    name = f"{url.database}_replica"

    async def admin(sql: str) -> None:
        eng = create_engine(url.render_as_string(hide_password=False), pool_size=1)
        async with eng.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            await conn.execute(text(sql))
        await eng.dispose()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    replica = url.set(database=name).render_as_string(hide_password=False)
    command.upgrade(alembic_config(replica), "heads")
    return replica


async def test_reports_read_the_replica_and_the_rest_the_primary(
    replica_url, settings, sessionmaker, session
):
    replica_engine = create_engine(replica_url, pool_size=1)
    app = create_app(
        settings,
        Overrides(
            sessionmaker=sessionmaker,
            report_sessionmaker=async_sessionmaker(
                replica_engine, class_=SerialSession, expire_on_commit=False
            ),
        ),
    )
    program = await make_program(session)
    await make_referral(session, program=program, advocate=await make_advocate(session))
    key = await make_api_key(session, scopes=["read"])
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            primary = await gql(client, "{ referrals { totalCount } }", token=key)
            assert primary["data"]["referrals"]["totalCount"] == 1
            report = await gql(client, "{ reports { funnel { step count } } }", token=key)
            leads = {s["step"]: s["count"] for s in report["data"]["reports"]["funnel"]}["leads"]
            assert leads == 0  # the replica has not seen the primary's uncommitted referral
            csv = await client.get(
                "/reports/funnel.csv", headers={"authorization": f"Bearer {key}"}
            )
            assert csv.status_code == 200, csv.text
            assert "leads,0" in csv.text
    finally:
        await replica_engine.dispose()
