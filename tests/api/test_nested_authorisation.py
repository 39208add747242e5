"""Sensitive nested fields check the caller themselves, however their data arrived.

Each field is asked for through the public GraphQL endpoint twice: once through a path where
the parent query preloads the data (a page after a cursor joins the rewards in) and once where
the field loads it itself (a first page, one referral by id, ``node``). A widget token must be
refused (or see the field's widget view) the same way on both. Every API key holds at least the
read scope (``parse_scopes`` refuses none), so for these fields the key lacking the scope is the
widget token.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.builders import make_redemption, make_referral
from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.api.ids import encode_id
from vouch.core.clock import utcnow

# ``$after`` given: Advocate.referrals reads the page with the list query, which preloads the
# page's rewards; without it the first page goes through the batched loaders (lazy rewards).
ME_REFERRALS = """query($after: String) { me { referrals(first: 5, after: $after) {
  pageInfo { endCursor } nodes { id %s } } } }"""
LINK_REFERRALS = """query($after: String) { me { links { referrals(first: 5, after: $after) {
  nodes { id %s } } } } }"""
ONE = "query($id: ID!) { referral(id: $id) { id %s } }"
NODE = "query($id: ID!) { node(id: $id) { ... on Referral { id %s } } }"


async def _world(session: Any, codec: Any) -> tuple[Any, list[Any]]:
    from tests.factories import make_reward_rule
    from vouch.models import Reward, RewardEntry

    program = await make_program(session)
    rule = await make_reward_rule(session, program=program, side="referrer", amount_minor=5000)
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=program)
    referrals = []
    for _ in range(3):
        referral = await make_referral(session, link=link, status="won")
        await make_redemption(
            session,
            referral=referral,
            code=f"WELCOME{referral.id}",
            redeemed_at=utcnow(),
            redeemed_by="shop-user-1",
            order_ref="ORDER-1",
        )
        reward = Reward(
            program_id=program.id,
            rule_id=rule.id,
            referral_id=referral.id,
            advocate_id=advocate.id,
            side="referrer",
            kind="credit",
            amount_minor=5000,
            currency="USD",
        )
        session.add(reward)
        await session.flush()
        session.add(
            RewardEntry(
                reward_id=reward.id,
                state="pending",
                at=utcnow(),
                actor="api_key:ops",
                reason="held by the velocity rule",
                amount_minor=5000,
            )
        )
        referrals.append(referral)
    await session.commit()
    return advocate, referrals


def _forbidden(body: dict[str, Any]) -> bool:
    return bool(body.get("errors")) and all(
        e["extensions"]["code"] == "FORBIDDEN" for e in body["errors"]
    )


async def _widget_pages(
    client: Any, token: str, fields: str, *, link_page: int = 5
) -> list[dict[str, Any]]:
    """The widget's own referrals, through its advocate and through its link: a first page
    (lazy, batched loaders) and a page after a cursor (the list query preloads)."""
    answers = []
    link_query = LINK_REFERRALS.replace("first: 5", f"first: {link_page}")
    for query, connection in (
        (ME_REFERRALS, "Advocate.referrals"),
        (link_query, "ReferralLink.referrals"),
    ):
        for after in (None, encode_cursor_before_all(connection)):
            answers.append(
                await gql(client, query % fields, {"after": after}, token=token, expect_errors=True)
            )
    return answers


def _nodes(body: dict[str, Any]) -> list[dict[str, Any]]:
    me = body["data"]["me"]
    if "links" in me:
        return [n for link in me["links"] for n in link["referrals"]["nodes"]]
    return list(me["referrals"]["nodes"])


def encode_cursor_before_all(connection: str = "Advocate.referrals") -> str:
    """A cursor past the newest referral: every referral is on the page after it."""
    from vouch.api.pagination import encode_cursor

    return encode_cursor(connection, 10**17)


@pytest.mark.parametrize(
    "fields",
    ["rewards { side amountMinor }", "opportunities { crmId }", "revenue { amountMinor }"],
)
async def test_a_widget_is_refused_read_scoped_referral_fields_on_every_path(
    client, session, codec, app, fields
):
    advocate, referrals = await _world(session, codec)
    token = app.state.widget_tokens.mint(advocate.id)
    rid = encode_id("Referral", referrals[0].id)
    # pages of 2 through the links: 10 links x 2 referrals x 100 deals (each referral's bound)
    # stays under the widget's cost limit, so the scope check is what refuses
    answers = await _widget_pages(client, token, fields, link_page=2)
    answers.append(await gql(client, ONE % fields, {"id": rid}, token=token, expect_errors=True))
    answers.append(await gql(client, NODE % fields, {"id": rid}, token=token, expect_errors=True))
    for body in answers:
        assert _forbidden(body), body
    # the same pages without the field are answered: the refusal is the field's own
    ok = await gql(client, ME_REFERRALS % "", {"after": encode_cursor_before_all()}, token=token)
    assert len(ok["data"]["me"]["referrals"]["nodes"]) == 3


@pytest.mark.parametrize(
    ("fields", "hidden"),
    [
        (
            "email company flags flagged moderationReason",
            {
                "email": None,
                "company": None,
                "flags": [],
                "flagged": False,
                "moderationReason": None,
            },
        ),
        (
            "offerRedemption { code orderRef redeemedBy }",
            {
                "offerRedemption": {"code": None, "orderRef": None, "redeemedBy": None},
            },
        ),
    ],
)
async def test_a_widget_never_sees_friends_details_on_any_path(
    client, session, codec, app, fields, hidden
):
    advocate, referrals = await _world(session, codec)
    token = app.state.widget_tokens.mint(advocate.id)
    rid = encode_id("Referral", referrals[0].id)
    nodes = [n for body in await _widget_pages(client, token, fields) for n in _nodes(body)]
    one = await gql(client, ONE % fields, {"id": rid}, token=token)
    node = await gql(client, NODE % fields, {"id": rid}, token=token)
    nodes += [one["data"]["referral"], node["data"]["node"]]
    assert len(nodes) == 14
    for n in nodes:
        assert {k: n[k] for k in hidden} == hidden, n


async def test_a_key_with_the_read_scope_sees_rewards_on_every_path(client, session, codec):
    _, referrals = await _world(session, codec)
    key = await make_api_key(session, scopes=["read"])
    rid = encode_id("Referral", referrals[0].id)
    fields = "rewards { amountMinor } offerRedemption { code }"
    page = await gql(client, "{ referrals(first: 5) { nodes { " + fields + " } } }", token=key)
    one = await gql(client, ONE % fields, {"id": rid}, token=key)
    node = await gql(client, NODE % fields, {"id": rid}, token=key)
    nodes = page["data"]["referrals"]["nodes"] + [one["data"]["referral"], node["data"]["node"]]
    assert [n["rewards"] for n in nodes] == [[{"amountMinor": 5000}]] * 5
    assert all(n["offerRedemption"]["code"].startswith("WELCOME") for n in nodes)


async def test_a_widget_is_refused_internal_advocate_fields(client, session, codec, app):
    advocate, _ = await _world(session, codec)
    token = app.state.widget_tokens.mint(advocate.id)
    for fields in ("signals { kind }", "asks { type }"):
        body = await gql(client, "{ me { " + fields + " } }", token=token, expect_errors=True)
        assert _forbidden(body), body


async def test_reward_entries_show_a_widget_no_actor_or_reason_on_any_path(
    client, session, codec, app
):
    advocate, _ = await _world(session, codec)
    token = app.state.widget_tokens.mint(advocate.id)
    key = await make_api_key(session, scopes=["read"])
    fields = "rewards { entries { actor reason } }"
    mine = await gql(client, "{ me { " + fields + " } }", token=token)
    as_node = await gql(
        client,
        "query($id: ID!) { node(id: $id) { ... on Advocate { " + fields + " } } }",
        {"id": encode_id("Advocate", advocate.id)},
        token=token,
    )
    seen = [
        e
        for body in (mine["data"]["me"], as_node["data"]["node"])
        for r in body["rewards"]
        for e in r["entries"]
    ]
    assert seen == [{"actor": "vouch", "reason": None}] * 6
    # a read key sees them, through the advocate list (rewards preloaded) and one advocate
    listed = await gql(client, "{ advocates(first: 5) { nodes { " + fields + " } } }", token=key)
    one = await gql(
        client,
        "query($id: ID!) { advocate(id: $id) { " + fields + " } }",
        {"id": encode_id("Advocate", advocate.id)},
        token=key,
    )
    for advocate_seen in (listed["data"]["advocates"]["nodes"][0], one["data"]["advocate"]):
        assert [e for r in advocate_seen["rewards"] for e in r["entries"]] == [
            {"actor": "api_key:ops", "reason": "held by the velocity rule"}
        ] * 3
