"""Who may do what: API key scopes, widget tokens confined to one advocate, clear auth errors."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from tests.api.builders import make_click, make_redemption, make_referral
from tests.api.graphql import gql
from tests.conftest import TEST_SECRET
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.access.api_keys import revoke_api_key
from vouch.api.ids import encode_id
from vouch.core.security import WidgetTokens
from vouch.models import ApiKey, ReferralLink, RewardRule

real_time = time.time

ME = """{ me { externalId referralCount clicks { total }
  links { code shareUrl clickCount referralCount conversionCount }
  referrals { nodes { status email name company offerRedemption { code redeemed } } } } }"""


async def _setup(session, codec):
    program = await make_program(session)
    mine = await make_advocate(session)
    other = await make_advocate(session)
    my_link = await make_link(session, codec, advocate=mine, program=program)
    other_link = await make_link(session, codec, advocate=other, program=program)
    await make_click(session, link=my_link)
    referral = await make_referral(session, link=my_link, name="Linus Torvalds", status="won")
    await make_redemption(session, referral=referral, code="SECRET-CODE")
    other_referral = await make_referral(session, link=other_link)
    return program, mine, other, my_link, other_link, referral, other_referral


async def test_widget_reads_its_own_links_stats_and_referrals(client, session, codec, app):
    _, mine, _, my_link, *_ = await _setup(session, codec)
    token = app.state.widget_tokens.mint(mine.id)
    data = (await gql(client, ME, token=token))["data"]["me"]
    assert data == {
        "externalId": mine.external_id,
        "referralCount": 1,
        "clicks": {"total": 1},
        "links": [
            {
                "code": my_link.code,
                "shareUrl": f"http://testserver/r/{my_link.code}",
                "clickCount": 1,
                "referralCount": 1,
                "conversionCount": 1,
            }
        ],
        # the friend's contact details and redemption code are not the advocate's to see
        "referrals": {
            "nodes": [
                {
                    "status": "WON",
                    "email": None,
                    "name": "Linus",
                    "company": None,
                    "offerRedemption": {"code": None, "redeemed": False},
                }
            ]
        },
    }
    own_link = await gql(
        client,
        "query($c: String!){ referralLink(code: $c){ code } }",
        {"c": my_link.code},
        token=token,
    )
    assert own_link["data"]["referralLink"] == {"code": my_link.code}


async def test_widget_cannot_see_or_touch_anything_else(client, session, codec, app):
    program, mine, other, _, other_link, _, other_referral = await _setup(session, codec)
    token = app.state.widget_tokens.mint(mine.id)
    denied = [
        ("query($id: ID!){ advocate(id: $id){ email } }", {"id": encode_id("Advocate", other.id)}),
        ("query($c: String!){ referralLink(code: $c){ code } }", {"c": other_link.code}),
        (
            "query($id: ID!){ referral(id: $id){ status } }",
            {"id": encode_id("Referral", other_referral.id)},
        ),
        ("{ advocates { totalCount } }", {}),
        ("{ referrals { totalCount } }", {}),
        ("{ referralLinks { totalCount } }", {}),
        ("{ programs { totalCount } }", {}),
        ("query($id: ID!){ program(id: $id){ name } }", {"id": encode_id("Program", program.id)}),
        (
            'mutation($id: ID!){ setRewardRules(programId: $id, rules: [{name: "x", side: REFERRER, trigger: WON, amountMinor: 1}]){ changed } }',
            {"id": encode_id("Program", program.id)},
        ),
        (
            "mutation($id: ID!){ createWidgetToken(advocateId: $id){ token } }",
            {"id": encode_id("Advocate", other.id)},
        ),
        (
            "mutation($id: ID!){ eraseAdvocate(id: $id){ errors { code } } }",
            {"id": encode_id("Advocate", other.id)},
        ),
        (
            'mutation($a: ID!, $p: ID!){ createReferralLink(advocateId: $a, programId: $p, channel: "x"){ created } }',
            {"a": encode_id("Advocate", other.id), "p": encode_id("Program", program.id)},
        ),
    ]
    for query, variables in denied:
        body = await gql(client, query, variables, token=token, expect_errors=True)
        assert body["data"] is None, query
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", query
    assert await session.scalar(select(func.count()).select_from(RewardRule)) == 0
    assert await session.scalar(select(func.count()).select_from(ReferralLink)) == 2


async def test_widget_creates_its_own_share_link(client, session, codec, app):
    program, mine, *_ = await _setup(session, codec)
    token = app.state.widget_tokens.mint(mine.id)
    q = 'mutation($a: ID!, $p: ID!){ createReferralLink(advocateId: $a, programId: $p, channel: "whatsapp"){ created link { channel } errors { code } } }'
    body = await gql(
        client,
        q,
        {"a": encode_id("Advocate", mine.id), "p": encode_id("Program", program.id)},
        token=token,
    )
    assert body["data"]["createReferralLink"] == {
        "created": True,
        "link": {"channel": "whatsapp"},
        "errors": [],
    }


async def test_create_widget_token_with_write_key(client, session, codec, app):
    _, mine, *_ = await _setup(session, codec)
    key = await make_api_key(session, scopes=["write"])
    q = "mutation($id: ID!){ createWidgetToken(advocateId: $id){ token expiresAt advocate { externalId } errors { code } } }"
    payload = (await gql(client, q, {"id": encode_id("Advocate", mine.id)}, token=key))["data"][
        "createWidgetToken"
    ]
    assert payload["errors"] == []
    assert payload["advocate"] == {"externalId": mine.external_id}
    assert app.state.widget_tokens.verify(payload["token"]) == mine.id
    me = await gql(client, "{ me { externalId } }", token=payload["token"])
    assert me["data"]["me"] == {"externalId": mine.external_id}
    missing = (await gql(client, q, {"id": encode_id("Advocate", 999999)}, token=key))["data"][
        "createWidgetToken"
    ]
    assert missing == {
        "token": None,
        "expiresAt": None,
        "advocate": None,
        "errors": [{"code": "NOT_FOUND"}],
    }
    read_only = await make_api_key(session, scopes=["read"], name="reader")
    refused = await gql(
        client, q, {"id": encode_id("Advocate", mine.id)}, token=read_only, expect_errors=True
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_clear_errors_for_bad_credentials(client, session, monkeypatch):
    key = await make_api_key(session, scopes=["read"])
    key_id = await session.scalar(select(ApiKey.id))
    q = "{ programs { totalCount } }"
    cases = {
        "vk_deadbeef_not-a-real-key": "invalid or revoked API key",
        "garbage-token": "widget token is not valid",
    }
    for token, message in cases.items():
        body = await gql(client, q, token=token, expect_errors=True)
        assert body["errors"][0]["message"] == message
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    with monkeypatch.context() as m:  # minted two hours ago, with a one-hour lifetime
        m.setattr(time, "time", lambda: real_time() - 7200)
        expired = WidgetTokens(TEST_SECRET, ttl_seconds=3600).mint(1)
    body = await gql(client, q, token=expired, expect_errors=True)
    assert body["errors"][0]["message"] == "widget token has expired"
    basic = await client.post("/graphql", json={"query": q}, headers={"authorization": "Basic abc"})
    assert "Authorization: Bearer" in basic.json()["errors"][0]["message"]
    assert (await gql(client, q, token=key))["data"]["programs"]["totalCount"] == 0
    await revoke_api_key(session, key_id)
    await session.commit()
    body = await gql(client, q, token=key, expect_errors=True)
    assert body["errors"][0]["message"] == "invalid or revoked API key"


async def test_me_needs_a_widget_token(client, session):
    key = await make_api_key(session, scopes=["admin"])
    body = await gql(client, "{ me { id } }", token=key, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_last_used_is_recorded_by_a_read_only_request(client, session):
    key = await make_api_key(session, scopes=["read"])
    await session.commit()
    assert await session.scalar(select(ApiKey.last_used_at)) is None
    await gql(client, "{ programs { totalCount } }", token=key)
    session.expire_all()
    assert await session.scalar(select(ApiKey.last_used_at)) is not None


async def test_widget_stats_cost_constant_statements_whatever_the_link_count(
    client, session, codec, app, count_queries
):
    mine = await make_advocate(session)
    token = app.state.widget_tokens.mint(mine.id)
    q = "{ me { links { code clickCount referralCount conversionCount clicks { total } } clicks { total } } }"
    counts = []
    for _ in range(2):
        for _ in range(3):
            link = await make_link(
                session, codec, advocate=mine, program=await make_program(session)
            )
            await make_click(session, link=link)
        count_queries.reset()
        # executed each time (the widget cache would answer the second load from memory)
        body = await gql(client, q, token=token, headers={"cache-control": "no-cache"})
        counts.append((len(body["data"]["me"]["links"]), count_queries.count))
        links = body["data"]["me"]["links"]
        assert [link["clicks"]["total"] for link in links] == [1] * len(links)
        assert {(link["referralCount"], link["conversionCount"]) for link in links} == {(0, 0)}
        assert body["data"]["me"]["clicks"]["total"] == len(links)
    # the advocate with its links and their stats in one statement; the click summary
    assert counts == [(3, 2), (6, 2)]


async def test_widget_without_links_or_without_asking_for_them(client, session, app, count_queries):
    lonely = await make_advocate(session)
    token = app.state.widget_tokens.mint(lonely.id)
    body = await gql(client, "{ me { externalId links { code clickCount } } }", token=token)
    assert body["data"]["me"] == {"externalId": lonely.external_id, "links": []}
    count_queries.reset()
    body = await gql(client, "{ me { externalId } }", token=token)
    assert body["data"]["me"] == {"externalId": lonely.external_id}
    assert count_queries.count == 1  # the advocate only


def _widget_js_query() -> str:
    """The query site/static/widget.js sends on every load."""
    import re
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "site" / "static" / "widget.js").read_text()
    start = source.index("var QUERY =")
    return "".join(re.findall(r'"([^"]*)"', source[start : source.index(";", start)]))


async def test_the_embeddable_widgets_query_is_one_statement(
    client, session, codec, app, count_queries
):
    from datetime import timedelta

    from tests.factories import make_reward_rule
    from vouch.core.clock import utcnow
    from vouch.models import Ask, PointsEntry, Reward

    program, mine, other, _, _, referral, other_referral = await _setup(session, codec)
    now = utcnow()
    for i, (who, points) in enumerate(((mine, 5), (mine, 7), (other, 100))):
        session.add(
            PointsEntry(advocate_id=who.id, points=points, reason="seed", ref=f"s{i}", at=now)
        )
    rule = await make_reward_rule(session, program=program)
    for who, ref, state, amount in (
        (mine, referral, "fulfilled", 5000),
        (other, other_referral, "pending", 9999),
    ):
        session.add(
            Reward(
                program_id=program.id,
                rule_id=rule.id,
                referral_id=ref.id,
                advocate_id=who.id,
                side="referrer",
                kind="credit",
                amount_minor=amount,
                currency="EUR",
                state=state,
                clawback_until=now + timedelta(days=30),
            )
        )
    for who, kind, status, priority in (
        (mine, "review", "queued", 50),
        (mine, "case_study", "queued", 90),  # the best queued one
        (mine, "reference_call", "declined", 99),  # not open
        (other, "review", "sent", 10),
    ):
        session.add(
            Ask(
                advocate_id=who.id,
                program_id=program.id,
                type=kind,
                moment="manual",
                status=status,
                priority=priority,
                queued_at=now,
            )
        )
    await session.flush()
    key = await make_api_key(session, scopes=["read"])
    count_queries.reset()
    body = await gql(client, _widget_js_query(), token=app.state.widget_tokens.mint(mine.id))
    # advocate, links, stats, referral count, points, rewards and open asks: one statement
    assert count_queries.count == 1
    me = body["data"]["me"]
    assert (me["referralCount"], me["points"]) == (1, 12)
    assert [(link["clickCount"], link["referralCount"]) for link in me["links"]] == [(1, 1)]
    assert me["rewards"] == [
        {"amountMinor": 5000, "currency": "EUR", "state": "fulfilled", "kind": "credit"}
    ]
    assert me["nextAsk"]["type"] == "CASE_STUDY"
    # the same as the dataloaders give an API key, timestamps included
    q = """query($id: ID!) { advocate(id: $id) { referralCount points
      rewards { amountMinor currency state kind clawbackUntil createdAt } nextAsk { type status } } }"""
    by_key = await gql(client, q, {"id": encode_id("Advocate", mine.id)}, token=key)
    widget_q = """{ me { links { code } referralCount points
      rewards { amountMinor currency state kind clawbackUntil createdAt } nextAsk { type status } } }"""
    by_widget = await gql(client, widget_q, token=app.state.widget_tokens.mint(mine.id))
    expected = by_key["data"]["advocate"]
    assert expected["nextAsk"] == {"type": "CASE_STUDY", "status": "QUEUED"}
    assert {k: v for k, v in by_widget["data"]["me"].items() if k != "links"} == expected
