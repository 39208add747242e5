"""One public id everywhere: the ids a webhook, a CSV, a report, the console and the CLI give
are the opaque ids GraphQL and the inbound endpoint accept."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from sqlalchemy import func, select

from tests.api.graphql import gql
from tests.attribution.factories import make_referral
from tests.factories import make_api_key
from tests.web.conftest import claim, make_setup
from tests.web.test_inbound_webhooks import post
from vouch.attribution import webhooks
from vouch.attribution.webhooks import EndpointInput, SendResult
from vouch.core.clock import utcnow
from vouch.core.ids import encode_id
from vouch.models import Opportunity, Referral

RESOLVE = """
query($r: ID!, $p: ID!, $a: ID!, $l: ID!) {
  referral(id: $r) { id email }
  program(id: $p) { id }
  advocate(id: $a) { id }
  referralLink(id: $l) { id }
}"""

NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"


async def _delivered_bodies(session) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(url: str, headers: dict[str, str], body: bytes) -> SendResult:
        sent.append(json.loads(body))
        return SendResult(status_code=204)

    await webhooks.deliver_due(session, send, now=utcnow())
    return sent


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_a_webhook_id_resolves_in_graphql_and_comes_back_through_inbound(
    client, session, codec, app
):
    setup = await make_setup(session, codec)
    await webhooks.create_endpoint(
        session, EndpointInput(url="https://crm.example/hook", event_types=["referral.created"])
    )
    await session.commit()
    claimed = await claim(client, setup.code, email="buyer@newco.example")
    assert claimed.status_code in (200, 303), claimed.text
    referral = await session.scalar(select(Referral))
    assert referral is not None

    [body] = await _delivered_bodies(session)
    data = body["data"]
    assert body["type"] == "referral.created"
    assert (data["referral_id"], data["program_id"], data["advocate_id"], data["link_id"]) == (
        encode_id("Referral", referral.id),
        encode_id("Program", setup.program.id),
        encode_id("Advocate", setup.advocate.id),
        encode_id("ReferralLink", setup.link.id),
    )
    key = await make_api_key(session, scopes=["read"])
    ids = {"r": data["referral_id"], "p": data["program_id"], "a": data["advocate_id"]}
    resolved = (await gql(client, RESOLVE, ids | {"l": data["link_id"]}, token=key))["data"]
    assert resolved == {
        "referral": {"id": data["referral_id"], "email": "buyer@newco.example"},
        "program": {"id": data["program_id"]},
        "advocate": {"id": data["advocate_id"]},
        "referralLink": {"id": data["link_id"]},
    }

    ids_in_body = [data["referral_id"], data["program_id"], data["advocate_id"], data["link_id"]]
    nodes = await gql(client, NODES, {"ids": ids_in_body}, token=key)
    assert nodes["data"]["nodes"] == [
        {"__typename": t, "id": i}
        for t, i in zip(
            ("Referral", "Program", "Advocate", "ReferralLink"), ids_in_body, strict=True
        )
    ]

    # The CRM stores the id and sends it back on its deal.
    deal = {
        "type": "opportunity.upsert",
        "provider": "hubspot",
        "data": {
            "objectId": 4242,
            "properties": {
                "dealname": "NewCo",
                "amount": "100",
                "dealstage": "appointment",
                "deal_currency_code": "USD",
            },
            "vouch_referral_id": data["referral_id"],
        },
    }
    answered = await post(client, deal, msg_id="msg_ids_1")
    assert answered.status_code == 200, answered.text
    opportunity = await session.scalar(select(Opportunity))
    assert opportunity is not None
    assert opportunity.referral_id == referral.id
    assert answered.json()["opportunity_id"] == encode_id("Opportunity", opportunity.id)
    chain = await gql(
        client,
        "query($o: ID) { attributionChain(opportunityId: $o) { referralId } }",
        {"o": answered.json()["opportunity_id"]},
        token=key,
    )
    assert chain["data"]["attributionChain"]["referralId"] == data["referral_id"]


async def test_an_integer_id_from_a_crm_is_refused_and_writes_nothing(client, session, codec):
    setup = await make_setup(session, codec)
    referral = await make_referral(
        session, program=setup.program, advocate=setup.advocate, link=setup.link
    )
    await session.commit()
    for value in (referral.id, str(referral.id), encode_id("Program", setup.program.id)):
        deal = {
            "type": "opportunity.upsert",
            "provider": "hubspot",
            "data": {
                "objectId": 7,
                "properties": {
                    "amount": "1",
                    "dealstage": "appointment",
                    "deal_currency_code": "USD",
                },
                "vouch_referral_id": value,
            },
        }
        refused = await post(client, deal, msg_id=f"msg_bad_{value}")
        assert refused.status_code == 422, (value, refused.text)
        assert refused.json()["error"]["field"] == "referralId"
    assert await session.scalar(select(func.count()).select_from(Opportunity)) == 0


async def test_csv_and_report_ids_resolve_in_graphql(client, session, codec):
    setup = await make_setup(session, codec)
    referral = await make_referral(
        session, program=setup.program, advocate=setup.advocate, link=setup.link
    )
    referral.flags = ["disposable_email"]
    referral.moderation = "pending"
    await session.flush()
    key = await make_api_key(session, scopes=["admin"])
    auth = {"authorization": f"Bearer {key}"}
    await session.commit()

    login = await client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert csrf is not None
    await client.post("/console/login", data={"csrf": csrf.group(1), "api_key": key})
    program = encode_id("Program", setup.program.id)
    moderation = await client.get(f"/console/export/moderation.csv?program={program}")
    [row] = _rows(moderation.text)
    assert (row["referral_id"], row["program_id"], row["advocate_id"]) == (
        encode_id("Referral", referral.id),
        program,
        encode_id("Advocate", setup.advocate.id),
    )
    ids = {"r": row["referral_id"], "p": row["program_id"], "a": row["advocate_id"]}
    ids["l"] = encode_id("ReferralLink", setup.link.id)
    resolved = (await gql(client, RESOLVE, ids, token=key))["data"]
    assert resolved["referral"]["id"] == row["referral_id"]
    in_csv = [row["referral_id"], row["program_id"], row["advocate_id"]]
    nodes = await gql(client, NODES, {"ids": in_csv}, token=key)
    assert nodes["data"]["nodes"] == [
        {"__typename": t, "id": i}
        for t, i in zip(("Referral", "Program", "Advocate"), in_csv, strict=True)
    ]

    pipeline = await client.get("/reports/pipeline.csv?groupBy=program", headers=auth)
    assert [r["key"] for r in _rows(pipeline.text)] == [program]
    by_advocate = await client.get("/reports/pipeline.csv?groupBy=advocate", headers=auth)
    assert [r["key"] for r in _rows(by_advocate.text)] == [encode_id("Advocate", setup.advocate.id)]
    report = await gql(
        client,
        'query($p: ID) { reports(programId: $p) { pipeline(groupBy: "program") { key } } }',
        {"p": program},
        token=key,
    )
    assert report["data"]["reports"]["pipeline"] == [{"key": program}]
    leaders = await client.get(f"/reports/leaderboard.csv?programId={program}", headers=auth)
    assert [r["advocate_id"] for r in _rows(leaders.text)] == [
        encode_id("Advocate", setup.advocate.id)
    ]


async def test_console_urls_carry_opaque_ids(client, session, codec):
    setup = await make_setup(session, codec)
    referral = await make_referral(
        session, program=setup.program, advocate=setup.advocate, link=setup.link
    )
    referral.flags = ["velocity"]
    referral.moderation = "pending"
    await session.flush()
    key = await make_api_key(session, scopes=["admin"], name="ops")
    await session.commit()
    login = await client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert csrf is not None
    await client.post("/console/login", data={"csrf": csrf.group(1), "api_key": key})

    public = encode_id("Referral", referral.id)
    queue = await client.get("/console/moderation")
    assert f'action="/console/moderation/{public}"' in queue.text
    token = re.search(r'name="csrf" value="([^"]+)"', queue.text)
    assert token is not None
    form = {"csrf": token.group(1), "decision": "approve", "reason": "checked"}
    wrong = await client.post(f"/console/moderation/{referral.id}", data=form)
    assert wrong.status_code == 422
    await session.refresh(referral)
    assert referral.moderation == "pending"
    done = await client.post(f"/console/moderation/{public}", data=form)
    assert (done.status_code, done.headers["location"]) == (303, "/console/moderation?done=approve")
    await session.refresh(referral)
    assert referral.moderation == "approved"

    program = encode_id("Program", setup.program.id)
    overview = await client.get(f"/console?program={program}")
    assert f'<option value="{program}" selected>' in overview.text
    assert f"/console/export/funnel.csv?program={program}&amp;" in overview.text
