"""Nested lists that are not connections have a documented bound: ``Advocate.rewards``,
``Referral.opportunities`` and ``Referral.revenue`` give the 100 most recent rows, oldest first
(the filterable top-level connections give them all), whichever path loads them: the admin's
queries, the widget's ``me`` and the cost limit all count 100."""

from __future__ import annotations

from sqlalchemy import text

from tests.api.graphql import gql
from tests.attribution.factories import make_referral, make_world
from tests.factories import make_api_key, make_reward_rule
from vouch.api.ids import encode_id

ROWS = 105  # more than the bound


async def _busy_referral(session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    rule = await make_reward_rule(session, program=program)
    ids = {"p": program.id, "r": rule.id, "ref": referral.id, "a": advocate.id, "n": ROWS}
    await session.execute(
        text(
            "INSERT INTO rewards (program_id, rule_id, referral_id, advocate_id, side, "
            "trigger_ref, kind, amount_minor, currency, points, state, round) "
            "SELECT :p, :r, :ref, :a, 'referrer', 't' || g, 'credit', g, 'USD', 0, 'pending', 0 "
            "FROM generate_series(1, :n) g"
        ),
        ids,
    )
    await session.execute(
        text(
            "INSERT INTO opportunities (provider, crm_id, referral_id, program_id, kind, "
            "amount_minor, currency, stage, status, created_at, updated_at) "
            "SELECT 'other', 'deal-' || g, :ref, :p, 'expansion', g, 'USD', 'open', 'open', "
            "now(), now() FROM generate_series(1, :n) g"
        ),
        ids,
    )
    await session.execute(
        text(
            "INSERT INTO revenue_events (external_id, referral_id, program_id, kind, "
            "amount_minor, currency, occurred_at, source) "
            "SELECT 'ch-' || g, :ref, :p, 'recurring', g, 'USD', "
            "now() - (:n + 1 - g) * interval '1 day', 'billing' FROM generate_series(1, :n) g"
        ),
        ids,
    )
    await session.commit()
    return advocate, referral


NEWEST = list(range(ROWS - 99, ROWS + 1))  # amounts of the 100 most recent, oldest first


async def test_nested_lists_give_their_100_most_recent_rows(client, session, codec):
    advocate, referral = await _busy_referral(session, codec)
    admin = await make_api_key(session, scopes=["admin"])
    query = """query($a: ID!, $r: ID!) {
      advocate(id: $a) { rewards { amountMinor } }
      referral(id: $r) { opportunities { amountMinor } revenue { amountMinor } }
    }"""
    data = (
        await gql(
            client,
            query,
            {"a": encode_id("Advocate", advocate.id), "r": encode_id("Referral", referral.id)},
            token=admin,
        )
    )["data"]
    assert [r["amountMinor"] for r in data["advocate"]["rewards"]] == NEWEST
    assert [o["amountMinor"] for o in data["referral"]["opportunities"]] == NEWEST
    assert [e["amountMinor"] for e in data["referral"]["revenue"]] == NEWEST
    # the connection has them all
    everything = """query($a: ID!) { rewards(filter: {advocateId: $a}, first: 100) {
      totalCount } }"""
    total = await gql(client, everything, {"a": encode_id("Advocate", advocate.id)}, token=admin)
    assert total["data"]["rewards"]["totalCount"] == ROWS


async def test_the_widget_gets_the_same_bound(client, session, codec, app):
    advocate, _ = await _busy_referral(session, codec)
    token = app.state.widget_tokens.mint(advocate.id)
    # with its links (the widget's one-statement load) and without
    for query in (
        "{ me { rewards { amountMinor } } }",
        "{ me { links { code } rewards { amountMinor } } }",
    ):
        data = (await gql(client, query, token=token))["data"]
        assert [r["amountMinor"] for r in data["me"]["rewards"]] == NEWEST, query
