"""Issue 14 item 3: nested connections multiply. A widget token asked for
``me { referrals(first:100) { advocate { referrals(first:100) { … }}}}`` and froze a worker;
the cost (objects the operation may return) is now checked before any SQL runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from graphql import parse

from tests.api.builders import make_referral
from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.api.cost import operation_cost
from vouch.api.ids import encode_id
from vouch.api.schema import build_schema
from vouch.core.settings import Settings
from vouch.web.app import Overrides, create_app

ATTACK = """{ me { referrals(first: 100) { nodes { advocate { referrals(first: 100) { nodes {
  advocate { referrals(first: 100) { nodes { id } } } } } } } } } }"""


async def _widget(session, codec, app) -> tuple[str, Any]:
    program = await make_program(session)
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=program)
    await make_referral(session, link=link)
    await session.commit()
    return app.state.widget_tokens.mint(advocate.id), advocate


async def test_widget_nested_connections_are_refused_before_sql(
    client, session, codec, app, count_queries
):
    token, _ = await _widget(session, codec, app)
    count_queries.reset()
    body = await gql(client, ATTACK, token=token, expect_errors=True)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 1_010_100, "limit": 2_500}
    assert error["message"] == (
        "This query may return up to 1,010,100 objects (cost 1010100); the limit for widget"
        " tokens is 2,500. Ask for fewer items with `first`, nest fewer lists, or split the query."
    )
    assert count_queries.statements == []


async def test_widget_limit_is_lower_than_an_api_keys(client, session, codec, app, count_queries):
    token, advocate = await _widget(session, codec, app)
    key = await make_api_key(session, scopes=["read"])
    await session.commit()
    two_levels = (
        "{ me { referrals(first: 100) { nodes { advocate { referrals(first: 100) { nodes { id } } }"
        " } } } }"
    )
    refused = await gql(client, two_levels, token=token, expect_errors=True)
    assert refused["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COSTLY",
        "cost": 10_100,
        "limit": 2_500,
    }
    # the same shape through an API key costs the same and is within its limit
    query = (
        "query($id: ID!) { advocate(id: $id) { referrals(first: 100) { nodes { advocate {"
        " referrals(first: 100) { nodes { status } } } } } } }"
    )
    body = await gql(client, query, {"id": encode_id("Advocate", advocate.id)}, token=key)
    assert body["data"]["advocate"]["referrals"]["nodes"] == [
        {"advocate": {"referrals": {"nodes": [{"status": "LEAD"}]}}}
    ]
    # three levels are refused for keys too
    count_queries.reset()
    three = query.replace("status", "advocate { referrals(first: 100) { nodes { status } } }")
    refused = await gql(
        client, three, {"id": encode_id("Advocate", advocate.id)}, token=key, expect_errors=True
    )
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COSTLY",
        "cost": 1_010_100,
        "limit": 50_000,
    }
    assert [s for s in count_queries.statements if "api_keys" not in s] == []


async def test_variables_and_fragments_count(client, session, codec, app):
    token, _ = await _widget(session, codec, app)
    query = """query($n: Int!) { me { ...R } }
      fragment R on Advocate { referrals(first: $n) { nodes { advocate { ...S } } } }
      fragment S on Advocate { referrals(first: $n) { nodes { id } } links { id } }"""
    small = await gql(client, query, {"n": 2}, token=token)
    assert len(small["data"]["me"]["referrals"]["nodes"]) == 1
    big = await gql(client, query, {"n": 60}, token=token, expect_errors=True)
    # 60 referrals, each with 60 referrals and up to 10 links
    assert big["errors"][0]["extensions"]["cost"] == 60 + 60 * (60 + 10)
    assert big["data"] is None


async def test_the_widget_script_query_fits(client, session, codec, app):
    token, _ = await _widget(session, codec, app)
    # site/static/widget.js's query
    query = (
        "query VouchWidget { me { firstName referralCount points "
        "links { code channel shareUrl clickCount referralCount } "
        "rewards { amountMinor currency state kind } nextAsk { type moment status } } }"
    )
    body = await gql(client, query, token=token)
    assert body["data"]["me"]["referralCount"] == 1
    measured = operation_cost(build_schema(production=False)._schema, parse(query), None, None)
    assert measured is not None
    assert measured[1] == 110  # links 10 + rewards 100 (Advocate.rewards: its 100 most recent)


@pytest.mark.parametrize(("env", "limit"), [("VOUCH_GRAPHQL_WIDGET_MAX_COST", 100)])
async def test_limits_are_settings(settings, sessionmaker, session, codec, env, limit):
    custom = Settings(**{**settings.model_dump(by_alias=True), env: limit})
    app = create_app(custom, Overrides(sessionmaker=sessionmaker))
    token, _ = await _widget(session, codec, app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        ok = await gql(c, "{ me { referrals(first: 99) { nodes { id } } } }", token=token)
        assert len(ok["data"]["me"]["referrals"]["nodes"]) == 1
        body = await gql(
            c,
            "{ me { referrals(first: 100) { nodes { id } } links { id } } }",
            token=token,
            expect_errors=True,
        )
    assert body["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COSTLY",
        "cost": 110,
        "limit": limit,
    }
