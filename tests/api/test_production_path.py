"""The production read path, exercised by the API's own queries.

The rest of the API suite binds each request's session to the test's connection (so every
test rolls back), which switches off what production runs for queries: autocommit
connections (`core.read_only.autocommit_reads`) and the raw pooled reader (`core.raw_select._reader`). Here
the demo is committed for real and a representative set of queries — the pages, nested
objects, reports, chains and the widget's `me` — runs through both set-ups: an app whose
sessions come from the engine as in production, and one bound to a test connection. The
answers must be identical, and the production app must actually have taken the autocommit
and raw-reader paths."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from vouch.access.api_keys import create_api_key
from vouch.api import execution
from vouch.cli.demo_seed import seed_demo_data
from vouch.core import raw_select, read_only
from vouch.core.clock import utcnow
from vouch.core.codes import LinkCodec
from vouch.core.security import WidgetTokens
from vouch.core.sessions import SerialSession, session_factory
from vouch.core.settings import Settings
from vouch.models.enums import Scope
from vouch.web.app import Overrides, create_app

pytestmark = pytest.mark.committing

PAGE = """
fragment R on Referral {
  id status source flags flagged moderation consent erased createdAt email name company
  advocate { id externalId email tier score referralCount isIcp }
  link { id code channel status shareUrl clickCount referralCount conversionCount }
  offerRedemption { id referralId code issuedAt expiresAt redeemedAt redeemed orderRef }
  rewards { id side kind amountMinor currency points state triggerRef }
  program { id slug }
}
"""

QUERIES: dict[str, str] = {
    "programs": """{ programs(first: 10) { totalCount edges { cursor node { id slug name status
        currency offerKind offerValue rewardRules { id } } } pageInfo { hasNextPage endCursor } } }""",
    "advocates": """{ advocates(first: 30) { totalCount nodes { id externalId email firstName tier
        score referralCount points links { id code } rewards { id state } clicks { total } } } }""",
    "advocates-newest": """{ advocates(first: 5, order: NEWEST_FIRST) { nodes { id
        referrals(first: 3) { nodes { id status } } } pageInfo { endCursor hasNextPage } } }""",
    "referrals": PAGE + "{ referrals(first: 50) { totalCount nodes { ...R } } }",
    "referrals-page-2": PAGE
    + """{ a: referrals(first: 5) { pageInfo { endCursor } }
        b: referrals(first: 5, order: OLDEST_FIRST) { nodes { ...R } } }""",
    "links": """{ referralLinks(first: 50) { totalCount nodes { id code channel status clickCount
        referralCount conversionCount advocate { id } program { slug } } } }""",
    "rewards": """{ rewards(first: 50) { totalCount nodes { id side kind amountMinor currency
        state entries { state at actor reason fulfilmentRef amountMinor } } }
        rewardTotals { state currency count amountMinor points } }""",
    "reports": """{ reports {
        pipeline { ...P } byAdvocate: pipeline(groupBy: "advocate") { ...P }
        byTier: pipeline(groupBy: "tier") { ...P } byChannel: pipeline(groupBy: "channel") { ...P }
        byMonth: pipeline(groupBy: "month") { ...P }
        funnel { step count rateFromPrevious rateFromFirst }
        timeToFirstReferral { advocates medianDays meanDays }
        retention { afterDays customers retained rate }
        cost { currency pendingMinor approvedMinor fulfilledMinor voidedMinor rewardCostMinor
          revenueMinor totalRevenueMinor revenueShare customers costPerCustomerMinor roi }
        leaderboard { rank advocateId name tier leads won revenue { currency amountMinor } } } }
        fragment P on PipelineRow { PFIELDS }""".replace(
        "PFIELDS",
        "key label currency leads opportunities pipelineMinor won wonMinor revenueMinor sourcedRevenueMinor expansionRevenueMinor",
    ),
}


@pytest.fixture
async def seeded(
    committing_engine: AsyncEngine, settings: Settings, codec: LinkCodec
) -> dict[str, Any]:
    async with session_factory(committing_engine)() as s:
        summary = await seed_demo_data(s, codec, secret=settings.resolved_secret(), now=utcnow())
        key = await create_api_key(s, name="prod-path", scopes=[Scope.ADMIN])
        await s.commit()
    tokens = WidgetTokens(settings.resolved_secret(), settings.widget_token_ttl_seconds)
    return {"key": key.plaintext, "widget": tokens.mint(summary.advocate_id)}


async def _answers(app: Any, seeded: dict[str, Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for name, query in QUERIES.items():
            response = await client.post(
                "/graphql",
                json={"query": query},
                headers={"authorization": f"Bearer {seeded['key']}"},
            )
            assert response.status_code == 200, response.text
            answers[name] = response.json()
            assert "errors" not in answers[name], (name, answers[name])
        me = await client.post(
            "/graphql",
            json={
                "query": "{ me { id links { code shareUrl } referralCount points "
                "referrals { nodes { id status } } rewards { id state } nextAsk { id } } }"
            },
            headers={"authorization": f"Bearer {seeded['widget']}"},
        )
        answers["me"] = me.json()
        assert "errors" not in answers["me"], answers["me"]
    return answers


async def test_engine_sessions_answer_as_the_test_sessions_do(
    seeded: dict[str, Any],
    committing_engine: AsyncEngine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    switched: list[bool] = []
    readers: list[bool] = []
    real_autocommit, real_reader = read_only.autocommit_reads, raw_select._reader

    def spy_autocommit(session: AsyncSession) -> bool:
        switched.append(real_autocommit(session))
        return switched[-1]

    async def spy_reader(session: AsyncSession) -> Any:
        reader = await real_reader(session)
        readers.append(reader is not None)
        return reader

    monkeypatch.setattr(execution, "autocommit_reads", spy_autocommit)
    monkeypatch.setattr(raw_select, "_reader", spy_reader)

    production = create_app(settings, Overrides(sessionmaker=session_factory(committing_engine)))
    produced = await _answers(production, seeded)
    assert switched
    assert all(switched), "queries did not run on autocommit connections"
    assert any(readers), "no raw statement took the pooled reader"

    switched.clear()
    readers.clear()
    connection: AsyncConnection
    async with committing_engine.connect() as connection:
        bound: async_sessionmaker[AsyncSession] = async_sessionmaker(
            bind=connection,
            class_=SerialSession,
            join_transaction_mode="create_savepoint",
            expire_on_commit=False,
            autoflush=False,
        )
        expected = await _answers(create_app(settings, Overrides(sessionmaker=bound)), seeded)
        await connection.rollback()
    assert switched
    assert not any(switched)  # the test set-up keeps its transaction
    assert not any(readers)

    assert produced.keys() == expected.keys()
    for name in expected:
        assert produced[name] == expected[name], name
