"""The attribution GraphQL surface: scopes, payload errors, idempotency, query counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from tests.api.graphql import gql
from tests.attribution.factories import at, make_referral, make_world
from tests.factories import make_advocate, make_api_key, make_link, make_reward_rule
from vouch.api.ids import encode_id
from vouch.attribution import lifecycle, moderation
from vouch.models import Opportunity, Program, Reward, WebhookDelivery, WebhookEndpoint

UPSERT = """
mutation($input: UpsertOpportunityInput!, $key: String) {
  upsertOpportunity(input: $input, idempotencyKey: $key) {
    created
    opportunity { id crmId status stage amountMinor referralId history { fromStage toStage } }
    errors { message field code }
  }
}"""


async def _won_referral(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, amount_minor=5000)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(1))
    reward = await session.scalar(select(Reward).where(Reward.referral_id == referral.id))
    return program, advocate, link, referral, reward


async def test_upsert_opportunity_is_idempotent_and_validates(client, session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    key = await make_api_key(session, scopes=["write"], name="hubspot")
    variables: dict[str, Any] = {
        "input": {
            "crmId": "D-1",
            "stage": "Demo",
            "amountMinor": 250000,
            "currency": "USD",
            "referralId": encode_id("Referral", referral.id),
        },
        "key": "idem-1",
    }
    first = (await gql(client, UPSERT, variables, token=key))["data"]["upsertOpportunity"]
    assert first["errors"] == []
    assert first["created"] is True
    assert first["opportunity"]["history"] == [{"fromStage": None, "toStage": "Demo"}]
    assert first["opportunity"]["referralId"] == encode_id("Referral", referral.id)
    again = (await gql(client, UPSERT, variables, token=key))["data"]["upsertOpportunity"]
    assert again["opportunity"]["id"] == first["opportunity"]["id"]
    assert again["created"] is True  # the first answer, replayed

    bad = {"input": {**variables["input"], "crmId": "D-2", "currency": "DOLLARS"}}
    body = (await gql(client, UPSERT, bad, token=key))["data"]["upsertOpportunity"]
    assert body == {
        "created": False,
        "opportunity": None,
        "errors": [
            {
                "message": "'DOLLARS' is not an ISO-4217 currency code",
                "field": "currency",
                "code": "INVALID",
            }
        ],
    }
    assert await session.scalar(select(func.count()).select_from(Opportunity)) == 1


async def test_mutations_need_the_right_scope(client, session, codec):
    *_, reward = await _won_referral(session, codec)
    reader = await make_api_key(session, scopes=["read"])
    writer = await make_api_key(session, scopes=["write"], name="w")
    q = "mutation($id: ID!){ approveReward(rewardId: $id){ reward { state } errors { code } } }"
    for token in (None, reader, writer):
        body = await gql(
            client, q, {"id": encode_id("Reward", reward.id)}, token=token, expect_errors=True
        )
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await session.refresh(reward)
    assert reward.state == "pending"


async def test_reward_lifecycle_queries_and_totals(client, session, codec, count_queries, app):
    _, advocate, _, _, reward = await _won_referral(session, codec)
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    rid = encode_id("Reward", reward.id)
    approve = 'mutation($id: ID!){ approveReward(rewardId: $id, reason: "ok"){ reward { state } errors { code } } }'
    assert (await gql(client, approve, {"id": rid}, token=admin))["data"]["approveReward"] == {
        "reward": {"state": "approved"},
        "errors": [],
    }
    fulfil = "mutation($id: ID!){ fulfilReward(rewardId: $id){ fulfilled reward { state } errors { code } } }"
    assert (await gql(client, fulfil, {"id": rid}, token=admin))["data"]["fulfilReward"] == {
        "fulfilled": True,
        "reward": {"state": "fulfilled"},
        "errors": [],
    }
    approve_again = (await gql(client, approve, {"id": rid}, token=admin))["data"]["approveReward"]
    assert approve_again == {"reward": None, "errors": [{"code": "INVALID_TRANSITION"}]}

    q = """query($f: RewardFilterInput){
      rewards(filter: $f, first: 50) { totalCount nodes { state amountMinor entries { state actor reason } } }
      rewardTotals(filter: $f) { state currency count amountMinor }
    }"""
    f = {"f": {"advocateId": encode_id("Advocate", advocate.id)}}
    count_queries.reset()
    data = (await gql(client, q, f, token=admin))["data"]
    one_reward_count = count_queries.count
    assert data["rewards"]["totalCount"] == 1
    assert data["rewards"]["nodes"][0]["entries"] == [
        {
            "state": "pending",
            "actor": "crm",
            "reason": data["rewards"]["nodes"][0]["entries"][0]["reason"],
        },
        {"state": "approved", "actor": "api_key:ops", "reason": "ok"},
        {"state": "fulfilled", "actor": "api_key:ops", "reason": None},
    ]
    assert data["rewardTotals"] == [
        {"state": "fulfilled", "currency": "USD", "count": 1, "amountMinor": 5000}
    ]
    # Five more rewards: the nested ledger costs the same number of statements as for one.
    prog = await session.get(Program, reward.program_id)
    link = await make_link(session, codec, advocate=advocate, program=prog, channel="x")
    for _ in range(5):
        r = await make_referral(session, program=prog, advocate=advocate, link=link)
        await lifecycle.transition(session, r.id, "won", source="crm", actor=None, now=at(2))
    count_queries.reset()
    data = (await gql(client, q, f, token=admin))["data"]
    assert data["rewards"]["totalCount"] == 6
    assert count_queries.count == one_reward_count
    # A widget token sees its own advocate's rewards and nobody else's.
    widget = app.state.widget_tokens.mint(advocate.id)
    own = await gql(
        client, "query($f: RewardFilterInput){ rewards(filter: $f){ totalCount } }", f, token=widget
    )
    assert own["data"]["rewards"]["totalCount"] == 6
    everyone = await gql(client, "{ rewards { totalCount } }", token=widget, expect_errors=True)
    assert everyone["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_transition_and_moderation_mutations(client, session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    writer = await make_api_key(session, scopes=["write"], name="crm")
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    rid = encode_id("Referral", referral.id)
    q = "mutation($id: ID!, $s: String!){ transitionReferral(referralId: $id, status: $s){ status transition { fromStatus toStatus source actor } errors { code field } } }"
    ok = (await gql(client, q, {"id": rid, "s": "qualified"}, token=writer))["data"][
        "transitionReferral"
    ]
    assert ok == {
        "status": "qualified",
        "transition": {
            "fromStatus": "lead",
            "toStatus": "qualified",
            "source": "api",
            "actor": "api_key:crm",
        },
        "errors": [],
    }
    bad = (await gql(client, q, {"id": rid, "s": "lead"}, token=writer))["data"][
        "transitionReferral"
    ]
    assert bad == {
        "status": None,
        "transition": None,
        "errors": [{"code": "INVALID_TRANSITION", "field": "status"}],
    }

    await moderation.flag_referral(session, referral, ["too_fast"], now=at(1))
    queue = "{ moderationQueue { totalCount nodes { referralId flags status } } }"
    assert (await gql(client, queue, token=admin))["data"]["moderationQueue"] == {
        "totalCount": 1,
        "nodes": [{"referralId": rid, "flags": ["too_fast"], "status": "qualified"}],
    }
    mod = 'mutation($id: ID!){ moderateReferral(referralId: $id, approve: false, reason: "fake"){ status moderation errors { code } } }'
    assert (await gql(client, mod, {"id": rid}, token=admin))["data"]["moderateReferral"] == {
        "status": "rejected",
        "moderation": "rejected",
        "errors": [],
    }
    assert (await gql(client, queue, token=admin))["data"]["moderationQueue"]["totalCount"] == 0


async def test_chain_query_and_reattribution(client, session, codec):
    program, advocate, _link, referral, _ = await _won_referral(session, codec)
    other = await make_advocate(session, first_name="Grace")
    other_link = await make_link(session, codec, advocate=other, program=program, channel="slack")
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    chain_q = """query($id: ID){ attributionChain(referralId: $id) {
        status advocate { firstName } link { channel }
        decisions { rule evidence actor isCurrent supersedesId }
        transitions { fromStatus toStatus source }
        rewards { state entries { state } } } }"""
    rid = encode_id("Referral", referral.id)
    before = (await gql(client, chain_q, {"id": rid}, token=admin))["data"]["attributionChain"]
    assert before["advocate"]["firstName"] == advocate.first_name
    assert before["decisions"] == [
        {
            "rule": "last_touch",
            "evidence": "click",
            "actor": "landing",
            "isCurrent": True,
            "supersedesId": None,
        }
    ]
    assert [t["toStatus"] for t in before["transitions"]] == ["lead", "won"]
    m = """mutation($r: ID!, $l: ID!){ reattributeReferral(referralId: $r, linkId: $l, reason: "CRM says Grace") {
        decision { advocateId isCurrent supersedesId evidence } errors { code field } } }"""
    got = (
        await gql(client, m, {"r": rid, "l": encode_id("ReferralLink", other_link.id)}, token=admin)
    )["data"]["reattributeReferral"]
    assert got["errors"] == []
    assert got["decision"]["advocateId"] == encode_id("Advocate", other.id)
    after = (await gql(client, chain_q, {"id": rid}, token=admin))["data"]["attributionChain"]
    assert after["advocate"]["firstName"] == "Grace"
    assert after["link"]["channel"] == "slack"
    assert [d["isCurrent"] for d in after["decisions"]] == [True, False]
    assert after["rewards"] == [
        {"state": "voided", "entries": [{"state": "pending"}, {"state": "voided"}]},
        {"state": "pending", "entries": [{"state": "pending"}]},
    ]
    none = await gql(client, "{ attributionChain { status } }", token=admin, expect_errors=True)
    assert none["errors"][0]["message"].startswith("give exactly one")


async def test_record_revenue_and_reports_query(client, session, codec):
    program, _advocate, _link, referral, _ = await _won_referral(session, codec)
    writer = await make_api_key(session, scopes=["write"], name="stripe")
    m = """mutation($i: RecordRevenueInput!, $k: String){ recordRevenue(input: $i, idempotencyKey: $k){
        created revenueEvent { externalId amountMinor referralId } errors { code field } } }"""
    i = {
        "externalId": "in_9",
        "kind": "recurring",
        "amountMinor": 9900,
        "currency": "USD",
        "occurredAt": "2026-03-05T10:00:00+00:00",
        "referralId": encode_id("Referral", referral.id),
    }
    first = (await gql(client, m, {"i": i, "k": "k9"}, token=writer))["data"]["recordRevenue"]
    assert first == {
        "created": True,
        "revenueEvent": {
            "externalId": "in_9",
            "amountMinor": 9900,
            "referralId": encode_id("Referral", referral.id),
        },
        "errors": [],
    }
    assert (await gql(client, m, {"i": i, "k": "k9"}, token=writer))["data"]["recordRevenue"][
        "created"
    ] is True  # the first answer, replayed
    bad = (await gql(client, m, {"i": {**i, "externalId": "in_10", "kind": "gift"}}, token=writer))[
        "data"
    ]["recordRevenue"]
    assert bad["errors"] == [{"code": "INVALID", "field": "kind"}]

    q = """query($p: ID){ reports(programId: $p) {
        pipeline(groupBy: "channel") { key leads revenueMinor sourcedRevenueMinor }
        funnel { step count rateFromPrevious }
        cost { currency pendingMinor rewardCostMinor revenueMinor customers roi }
        leaderboard(limit: 5) { rank name won revenue { currency amountMinor } } } }"""
    reader = await make_api_key(session, scopes=["read"], name="bi")
    data = (await gql(client, q, {"p": encode_id("Program", program.id)}, token=reader))["data"][
        "reports"
    ]
    assert data["pipeline"] == [
        {"key": "direct", "leads": 1, "revenueMinor": 9900, "sourcedRevenueMinor": 9900}
    ]
    assert [s["count"] for s in data["funnel"]] == [0, 1, 1, 1, 1]
    assert data["cost"] == [
        {
            "currency": "USD",
            "pendingMinor": 5000,
            "rewardCostMinor": 5000,
            "revenueMinor": 9900,
            "customers": 1,
            "roi": 0.98,
        }
    ]
    assert data["leaderboard"][0]["rank"] == 1
    bad_group = await gql(
        client,
        '{ reports { pipeline(groupBy: "colour") { key } } }',
        token=reader,
        expect_errors=True,
    )
    assert "groupBy must be one of" in bad_group["errors"][0]["message"]


async def test_webhook_endpoint_management_and_delivery_log(client, session):
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    create = """mutation($i: WebhookEndpointInput!){ createWebhookEndpoint(input: $i){
        secret endpoint { id url eventTypes active } errors { field code } } }"""
    made = (
        await gql(
            client,
            create,
            {"i": {"url": "https://hooks.example/v", "eventTypes": ["reward.approved"]}},
            token=admin,
        )
    )["data"]["createWebhookEndpoint"]
    assert made["errors"] == []
    assert made["secret"].startswith("whsec_")
    assert made["endpoint"]["eventTypes"] == ["reward.approved"]
    bad = (await gql(client, create, {"i": {"url": "hooks", "eventTypes": []}}, token=admin))[
        "data"
    ]["createWebhookEndpoint"]
    assert bad == {
        "secret": None,
        "endpoint": None,
        "errors": [{"field": "url", "code": "INVALID"}],
    }
    update = """mutation($id: ID!, $i: WebhookEndpointInput!){ updateWebhookEndpoint(id: $id, input: $i, rotateSecret: true){
        secret endpoint { eventTypes active } errors { code } } }"""
    updated = (
        await gql(
            client,
            update,
            {
                "id": made["endpoint"]["id"],
                "i": {"url": "https://hooks.example/v2", "eventTypes": [], "active": False},
            },
            token=admin,
        )
    )["data"]["updateWebhookEndpoint"]
    assert updated["endpoint"] == {"eventTypes": [], "active": False}
    assert updated["secret"] not in (None, made["secret"])
    listed = (
        await gql(
            client,
            "{ webhookEndpoints { nodes { url } } webhookDeliveries { totalCount } }",
            token=admin,
        )
    )["data"]
    assert listed == {
        "webhookEndpoints": {"nodes": [{"url": "https://hooks.example/v2"}]},
        "webhookDeliveries": {"totalCount": 0},
    }
    delete = "mutation($id: ID!){ deleteWebhookEndpoint(id: $id){ deletedId errors { code } } }"
    gone = (await gql(client, delete, {"id": made["endpoint"]["id"]}, token=admin))["data"][
        "deleteWebhookEndpoint"
    ]
    assert gone == {"deletedId": made["endpoint"]["id"], "errors": []}
    again = (await gql(client, delete, {"id": made["endpoint"]["id"]}, token=admin))["data"][
        "deleteWebhookEndpoint"
    ]
    assert again == {"deletedId": None, "errors": [{"code": "NOT_FOUND"}]}
    assert await session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


async def test_csv_export_endpoint(client, session, codec):
    program, *_ = await _won_referral(session, codec)
    reader = await make_api_key(session, scopes=["read"], name="bi")
    url = f"/reports/pipeline.csv?programId={encode_id('Program', program.id)}&groupBy=month"
    denied = await client.get(url)
    assert denied.status_code == 401
    response = await client.get(url, headers={"authorization": f"Bearer {reader}"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    lines = response.text.splitlines()
    assert lines[0].startswith("key,label,currency,leads,")
    assert lines[1].startswith("2026-03,2026-03,USD,1,")
    missing = await client.get("/reports/nope.csv", headers={"authorization": f"Bearer {reader}"})
    assert missing.status_code == 404
    bad_date = await client.get(
        "/reports/funnel.csv?since=yesterday", headers={"authorization": f"Bearer {reader}"}
    )
    assert bad_date.status_code == 422
    assert bad_date.json()["error"]["field"] == "since"


async def test_external_payout_reports_back_with_write_scope(client, session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, kind="gift_card", amount_minor=2500)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(1))
    reward = await session.scalar(select(Reward).where(Reward.referral_id == referral.id))
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    payouts = await make_api_key(session, scopes=["write"], name="tremendous")
    rid = encode_id("Reward", reward.id)
    await gql(
        client,
        "mutation($id: ID!){ approveReward(rewardId: $id){ errors { code } } }",
        {"id": rid},
        token=admin,
    )
    fulfil = "mutation($id: ID!, $ref: String){ fulfilReward(rewardId: $id, fulfilmentRef: $ref){ fulfilled reward { state } errors { code field } } }"
    # Without a reference the write key may not trigger fulfilment; the admin requests it.
    denied = await gql(client, fulfil, {"id": rid}, token=payouts, expect_errors=True)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    requested = (await gql(client, fulfil, {"id": rid}, token=admin))["data"]["fulfilReward"]
    assert requested == {"fulfilled": False, "reward": {"state": "approved"}, "errors": []}
    blank = (await gql(client, fulfil, {"id": rid, "ref": " "}, token=payouts))["data"][
        "fulfilReward"
    ]
    assert blank == {
        "fulfilled": False,
        "reward": None,
        "errors": [{"code": "INVALID", "field": "fulfilmentRef"}],
    }
    done = (await gql(client, fulfil, {"id": rid, "ref": "gc_778"}, token=payouts))["data"][
        "fulfilReward"
    ]
    assert done == {"fulfilled": True, "reward": {"state": "fulfilled"}, "errors": []}
    ledger = (
        await gql(
            client,
            "query($id: ID!){ reward(id: $id){ entries { state actor fulfilmentRef } } }",
            {"id": rid},
            token=admin,
        )
    )["data"]["reward"]["entries"]
    assert ledger[-1] == {
        "state": "fulfilled",
        "actor": "api_key:tremendous",
        "fulfilmentRef": "gc_778",
    }


async def test_move_stage_and_advocate_chains(client, session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    writer = await make_api_key(session, scopes=["write"], name="sf")
    await gql(
        client,
        UPSERT,
        {
            "input": {
                "crmId": "S-1",
                "stage": "Prospecting",
                "amountMinor": 1000,
                "currency": "USD",
                "referralId": encode_id("Referral", referral.id),
            }
        },
        token=writer,
    )
    m = 'mutation{ moveOpportunityStage(crmId: "S-1", stage: "Closed Won", status: "won"){ opportunity { status stage history { toStage } } errors { code } } }'
    moved = (await gql(client, m, token=writer))["data"]["moveOpportunityStage"]
    assert moved == {
        "opportunity": {
            "status": "won",
            "stage": "Closed Won",
            "history": [{"toStage": "Prospecting"}, {"toStage": "Closed Won"}],
        },
        "errors": [],
    }
    missing = (
        await gql(
            client,
            'mutation{ moveOpportunityStage(crmId: "nope", stage: "x"){ errors { code field } } }',
            token=writer,
        )
    )["data"]["moveOpportunityStage"]
    assert missing == {"errors": [{"code": "NOT_FOUND", "field": "crmId"}]}
    q = "query($id: ID!){ advocateChains(advocateId: $id){ status transitions { toStatus source } opportunities { crmId status } } }"
    chains = (await gql(client, q, {"id": encode_id("Advocate", advocate.id)}, token=writer))[
        "data"
    ]["advocateChains"]
    assert chains == [
        {
            "status": "won",
            "transitions": [
                {"toStatus": "lead", "source": "landing"},
                {"toStatus": "opportunity", "source": "api"},
                {"toStatus": "won", "source": "api"},
            ],
            "opportunities": [{"crmId": "S-1", "status": "won"}],
        }
    ]


async def test_delivery_log_and_redelivery(client, session, codec):
    from vouch.attribution import webhooks
    from vouch.attribution.webhooks import EndpointInput, SendResult

    endpoint = await webhooks.create_endpoint(
        session, EndpointInput(url="https://hooks.example/x", event_types=[])
    )
    program, advocate, link = await make_world(session, codec)
    await make_referral(session, program=program, advocate=advocate, link=link)

    async def down(url, headers, body):
        return SendResult(status_code=503)

    for _ in range(webhooks.MAX_ATTEMPTS):
        await webhooks.deliver_due(session, down, now=at(400))
        await session.execute(update(WebhookDelivery).values(next_attempt_at=at(0)))
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    q = """query($e: ID){ webhookDeliveries(endpointId: $e, status: "dead") {
        totalCount nodes { id eventType messageId status attempts lastStatusCode } } }"""
    log = (await gql(client, q, {"e": encode_id("WebhookEndpoint", endpoint.id)}, token=admin))[
        "data"
    ]["webhookDeliveries"]
    assert log["totalCount"] == 1
    (node,) = log["nodes"]
    assert (node["eventType"], node["status"], node["attempts"], node["lastStatusCode"]) == (
        "referral.created",
        "dead",
        webhooks.MAX_ATTEMPTS,
        503,
    )
    assert node["messageId"].startswith("msg_")
    m = "mutation($id: ID!){ redeliverWebhook(deliveryId: $id){ delivery { status attempts } errors { code } } }"
    again = (await gql(client, m, {"id": node["id"]}, token=admin))["data"]["redeliverWebhook"]
    assert again == {"delivery": {"status": "pending", "attempts": 0}, "errors": []}
    bad = await gql(
        client,
        '{ webhookDeliveries(status: "lost") { totalCount } }',
        token=admin,
        expect_errors=True,
    )
    assert "status must be" in bad["errors"][0]["message"]
