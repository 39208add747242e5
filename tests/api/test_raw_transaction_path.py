"""The keyed conversion as production runs it: the app's sessions come from an engine, so its
raw statements take a transaction of their own (``core.raw_select.RawTransaction``) instead of
the Session's, and its replay's ORM read joins that transaction. The rest of the API suite
binds sessions to a test connection, where the Session's transaction carries every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.builders import make_redemption
from tests.attribution.factories import make_referral, make_world
from tests.factories import make_api_key, make_reward_rule
from vouch.core import raw_select
from vouch.core.raw_select import RawTransaction
from vouch.core.sessions import session_factory
from vouch.models import Conversion, OutboxEvent, Referral, Reward
from vouch.web.app import Overrides, create_app

pytestmark = pytest.mark.committing

CONVERT = """mutation($i: RecordConversionInput!) { recordConversion(input: $i) {
    conversion { id externalRef amountMinor } errors { code } } }"""


@pytest.fixture
def factory(committing_engine) -> async_sessionmaker[AsyncSession]:
    return session_factory(committing_engine)


@pytest.fixture
async def engine_client(settings, factory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, Overrides(sessionmaker=factory))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def _convert(client: httpx.AsyncClient, key: str, variables: dict[str, Any]) -> Any:
    response = await client.post(
        "/graphql",
        json={"query": CONVERT, "variables": {"i": variables}},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["recordConversion"]


async def test_a_keyed_conversion_runs_in_a_raw_transaction_and_replays(
    factory, engine_client, committing_engine, codec, monkeypatch
):
    async with factory() as s:
        program, advocate, link = await make_world(s, codec)
        await make_reward_rule(s, program=program, trigger="won", amount_minor=5000, cap_count=10)
        referral = await make_referral(s, program=program, advocate=advocate, link=link)
        redemption = await make_redemption(s, referral=referral)
        key = await make_api_key(s, scopes=["write"])
        await s.commit()
    opened: list[RawTransaction] = []
    real_open = RawTransaction.open

    async def spy(cls: type[RawTransaction], session: AsyncSession) -> RawTransaction | None:
        raw = await real_open(session)
        if raw is not None:
            opened.append(raw)
        return raw

    monkeypatch.setattr(raw_select.RawTransaction, "open", classmethod(spy))
    pool = committing_engine.sync_engine.pool
    variables = {
        "redemptionCode": redemption.code,
        "kind": "PURCHASE",
        "externalRef": "order-1",
        "amountMinor": 1999,
        "currency": "USD",
        "idempotencyKey": "raw-1",
    }
    first = await _convert(engine_client, key, variables)
    assert first["errors"] == []
    assert len(opened) == 1  # one transaction for the whole conversion
    again = await _convert(engine_client, key, variables)  # the replay reads with the ORM
    assert again == first
    assert len(opened) == 2
    mismatch = await _convert(engine_client, key, {**variables, "amountMinor": 5})
    assert mismatch["errors"] == [{"code": "IDEMPOTENCY_MISMATCH"}]  # rolled back
    assert pool.checkedout() == 0
    async with factory() as s:
        assert await s.scalar(select(func.count()).select_from(Conversion)) == 1
        assert await s.scalar(select(Referral.status).where(Referral.id == referral.id)) == "won"
        assert await s.scalar(select(func.count()).select_from(Reward)) == 1
        events = (await s.scalars(select(OutboxEvent.event_type))).all()
        assert "conversion.recorded" in events
