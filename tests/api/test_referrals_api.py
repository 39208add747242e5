"""The referral list: filters, ordering, nesting, and a constant number of SQL statements."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.api.builders import make_redemption, make_referral
from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.api.ids import encode_id
from vouch.api.pagination import encode_cursor
from vouch.core.clock import utcnow

NESTED = """
query($first: Int, $after: String, $f: ReferralFilterInput, $o: ListOrder) {
  referrals(first: $first, after: $after, filter: $f, order: $o) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id status flagged flags email
      advocate { externalId }
      link { code channel }
      offerRedemption { code redeemed }
    }
  }
}"""


async def _world(session, codec):
    program = await make_program(session)
    other_program = await make_program(session)
    a1, a2 = await make_advocate(session), await make_advocate(session)
    l1 = await make_link(session, codec, advocate=a1, program=program)
    l2 = await make_link(session, codec, advocate=a2, program=other_program)
    return program, other_program, a1, a2, l1, l2


async def test_filters_and_nesting(client, session, codec):
    program, _, a1, a2, l1, l2 = await _world(session, codec)
    r1 = await make_referral(session, link=l1, status="won")
    r2 = await make_referral(session, link=l1, status="lead", flags=["self_referral"])
    r3 = await make_referral(session, link=l2, status="qualified")
    await make_redemption(
        session, referral=r1, code="WELCOME15", redeemed_at=utcnow(), redeemed_by="shop"
    )
    key = await make_api_key(session, scopes=["read"])

    everything = (await gql(client, NESTED, {}, token=key))["data"]["referrals"]
    assert everything["totalCount"] == 3
    assert [n["id"] for n in everything["nodes"]] == [
        encode_id("Referral", r.id) for r in (r3, r2, r1)
    ]
    assert everything["nodes"][2] == {
        "id": encode_id("Referral", r1.id),
        "status": "WON",
        "flagged": False,
        "flags": [],
        "email": r1.email,
        "advocate": {"externalId": a1.external_id},
        "link": {"code": l1.code, "channel": "direct"},
        "offerRedemption": {"code": "WELCOME15", "redeemed": True},
    }
    assert everything["nodes"][1]["offerRedemption"] is None

    async def ids(f, order="NEWEST_FIRST"):
        data = (await gql(client, NESTED, {"f": f, "o": order}, token=key))["data"]["referrals"]
        return [n["id"] for n in data["nodes"]]

    enc = lambda r: encode_id("Referral", r.id)  # noqa: E731
    assert await ids({"status": ["WON", "QUALIFIED"]}, "OLDEST_FIRST") == [enc(r1), enc(r3)]
    assert await ids({"programId": encode_id("Program", program.id)}) == [enc(r2), enc(r1)]
    assert await ids({"advocateId": encode_id("Advocate", a2.id)}) == [enc(r3)]
    assert await ids({"linkId": encode_id("ReferralLink", l1.id)}) == [enc(r2), enc(r1)]
    assert await ids({"flagged": True}) == [enc(r2)]
    assert await ids({"flagged": False}) == [enc(r3), enc(r1)]
    now = utcnow()
    assert await ids({"createdFrom": (now - timedelta(hours=1)).isoformat()}) == [
        enc(r3),
        enc(r2),
        enc(r1),
    ]
    assert await ids({"createdTo": (now - timedelta(hours=1)).isoformat()}) == []


async def test_paging_follows_the_cursor(client, session, codec):
    *_, l1, _ = await _world(session, codec)
    made = [await make_referral(session, link=l1) for _ in range(5)]
    key = await make_api_key(session, scopes=["read"])
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(client, NESTED, {"first": 2, "after": after}, token=key))["data"][
            "referrals"
        ]
        assert page["totalCount"] == 5
        seen += [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [encode_id("Referral", r.id) for r in reversed(made)]


async def test_bad_filters_are_clear_errors(client, session):
    key = await make_api_key(session, scopes=["read"])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"f": {"programId": encode_id("Advocate", 1)}}, "not a valid Program id"),
        (
            {
                "f": {
                    "createdFrom": "2026-01-02T00:00:00+00:00",
                    "createdTo": "2026-01-01T00:00:00+00:00",
                }
            },
            "createdFrom must not be after createdTo",
        ),
        ({"f": {"createdFrom": "2026-01-02T00:00:00"}}, "must include a time zone"),
        ({"after": "garbage!"}, "not a valid cursor"),
        ({"first": 101}, "first must be between 0 and 100"),
    ]
    for variables, message in cases:
        body = await gql(client, NESTED, variables, token=key, expect_errors=True)
        assert body["errors"][0]["message"] == message, variables
        assert body["errors"][0]["extensions"]["code"] == "INVALID"
    unknown_status = await gql(
        client, NESTED, {"f": {"status": ["PENDING"]}}, token=key, expect_errors=True
    )
    assert "PENDING" in unknown_status["errors"][0]["message"]


async def _page_statements(client, count_queries, key, first: int) -> int:
    q = """query($first: Int){ referrals(first: $first){ totalCount nodes {
        status advocate { externalId email } link { code } offerRedemption { code } } } }"""
    count_queries.reset()
    body = await gql(client, q, {"first": first}, token=key)
    assert len(body["data"]["referrals"]["nodes"]) == first
    return int(count_queries.count)


async def _linked_referrals(client, session, codec, n: int) -> str:
    """``n`` referrals, each with its own advocate and link, every other one redeemed; returns
    a read key, already cached by the app (so the statements counted are the page's own)."""
    program = await make_program(session)
    for i in range(n):
        advocate = await make_advocate(session)
        link = await make_link(session, codec, advocate=advocate, program=program)
        referral = await make_referral(session, link=link)
        if i % 2:
            await make_redemption(session, referral=referral)
    key = await make_api_key(session, scopes=["read"])
    await gql(client, "{ __typename }", token=key)  # the key's last_used_at is now fresh
    return key


async def test_page_of_5_and_page_of_100_cost_the_same(client, session, codec, count_queries):
    key = await _linked_referrals(client, session, codec, 100)
    small = await _page_statements(client, count_queries, key, 5)
    large = await _page_statements(client, count_queries, key, 100)
    # the API key is cached after the warm-up call; one statement: the page with advocate, link
    # and redemption joined in and the total count as a window column
    assert small == large == 1
    # after a cursor the total needs its own count: still constant
    q = """query($after: String){ referrals(first: 5, after: $after){ totalCount nodes {
        advocate { externalId } link { code } offerRedemption { code } } } }"""
    count_queries.reset()
    body = await gql(client, q, {"after": encode_cursor("referrals", 10_000)}, token=key)
    assert body["data"]["referrals"]["totalCount"] == 100
    assert count_queries.count == 2


async def test_nested_program_and_advocate_lists_are_batched(client, session, codec, count_queries):
    program = await make_program(session)
    for _ in range(30):
        advocate = await make_advocate(session)
        link = await make_link(session, codec, advocate=advocate, program=program)
        await make_referral(session, link=link)
    key = await make_api_key(session, scopes=["read"])
    await gql(client, "{ __typename }", token=key)
    q = """query($first: Int){ advocates(first: $first){ nodes {
        referralCount clicks { total } links { code clickCount program { slug rewardRules { name } } }
        referrals(first: 3) { nodes { status } } } } }"""
    counts = []
    for first in (5, 30):
        count_queries.reset()
        body = await gql(client, q, {"first": first}, token=key)
        assert len(body["data"]["advocates"]["nodes"]) == first
        counts.append(count_queries.count)
    # count, page, referral counts, click sums, links, link stats, programs, rules, latest
    # referrals (the API key is cached after the warm-up call)
    assert counts == [9, 9]


REWARDS_PAGE = """query($first: Int){ referrals(first: $first){ nodes {
    id advocate { externalId } ...R } } }
  fragment R on Referral { rewards { side state amountMinor currency } }"""


async def _referrals_with_rewards(session, codec, n: int) -> None:
    from tests.factories import make_reward_rule
    from vouch.models import Reward

    program = await make_program(session)
    rules = [
        await make_reward_rule(session, program=program, side=side, amount_minor=amount)
        for side, amount in (("referrer", 5000), ("referred", 2000))
    ]
    for i in range(n):
        advocate = await make_advocate(session)
        link = await make_link(session, codec, advocate=advocate, program=program)
        referral = await make_referral(session, link=link)
        for rule in rules[: 1 + i % 2]:  # every other referral has both sides' rewards
            session.add(
                Reward(
                    program_id=program.id,
                    rule_id=rule.id,
                    referral_id=referral.id,
                    advocate_id=advocate.id if rule.side == "referrer" else None,
                    side=rule.side,
                    kind="credit",
                    amount_minor=rule.amount_minor,
                    currency="USD",
                )
            )
    await session.flush()


async def test_rewards_nested_in_a_page_cost_one_statement_whatever_the_size(
    client, session, codec, count_queries
):
    await _referrals_with_rewards(session, codec, 100)
    key = await make_api_key(session, scopes=["read"])
    await gql(client, "{ __typename }", token=key)  # the key is cached from here on
    counts = []
    for first in (5, 100):
        count_queries.reset()
        body = await gql(client, REWARDS_PAGE, {"first": first}, token=key)
        counts.append(count_queries.count)
        nodes = body["data"]["referrals"]["nodes"]
        assert len(nodes) == first
        # newest first: the 100th referral (odd index) has both sides, the 99th one side
        assert nodes[0]["rewards"] == [
            {"side": "referrer", "state": "pending", "amountMinor": 5000, "currency": "USD"},
            {"side": "referred", "state": "pending", "amountMinor": 2000, "currency": "USD"},
        ]
        assert [r["side"] for r in nodes[1]["rewards"]] == ["referrer"]
    assert counts == [2, 2]  # the page (with advocate joined in), then the page's rewards


async def test_rewards_read_with_the_page_equal_those_the_loader_reads(client, session, codec):
    """The page's batch read and a single referral's loader give the same rewards."""
    await _referrals_with_rewards(session, codec, 3)
    key = await make_api_key(session, scopes=["read"])
    fields = """id programId referralId advocateId ruleId side kind amountMinor currency points
        state triggerRef clawbackUntil createdAt"""
    page = await gql(
        client,
        f"{{ referrals(first: 3) {{ nodes {{ id rewards {{ {fields} }} }} }} }}",
        token=key,
    )
    nodes = page["data"]["referrals"]["nodes"]
    assert sum(len(node["rewards"]) for node in nodes) == 4
    for node in nodes:
        one = await gql(
            client,
            f"query($id: ID!) {{ referral(id: $id) {{ rewards {{ {fields} }} }} }}",
            {"id": node["id"]},
            token=key,
        )
        assert node["rewards"] == one["data"]["referral"]["rewards"]


async def test_a_page_reads_link_and_redemption_only_when_asked_and_still_answers_them(
    client, session, codec, count_queries
):
    key = await _linked_referrals(client, session, codec, 4)
    full = """{ referrals(first: 4) { nodes { id link { code } offerRedemption { code } } } }"""
    bare = "{ referrals(first: 4) { nodes { id advocate { externalId } } } }"
    count_queries.reset()
    body = await gql(client, full, token=key)
    assert count_queries.count == 1
    assert [n["offerRedemption"] is None for n in body["data"]["referrals"]["nodes"]] == [
        False,
        True,
        False,
        True,
    ]
    assert all(n["link"]["code"] for n in body["data"]["referrals"]["nodes"])
    count_queries.reset()
    await gql(client, bare, token=key)
    statements = count_queries.statements
    assert len(statements) == 1
    assert "referral_links" not in statements[0]
    assert "offer_redemptions" not in statements[0]


async def test_rewards_of_a_single_referral_still_need_the_read_scope(client, session, codec):
    await _referrals_with_rewards(session, codec, 1)
    key = await make_api_key(session, scopes=["read"])
    page = await gql(client, "{ referrals(first: 1) { nodes { id } } }", token=key)
    rid = page["data"]["referrals"]["nodes"][0]["id"]
    q = "query($id: ID!){ referral(id: $id) { rewards { side } } }"
    one = await gql(client, q, {"id": rid}, token=key)
    assert [r["side"] for r in one["data"]["referral"]["rewards"]] == ["referrer"]
