"""opportunity(id:) and opportunities(filter:): every deal that arrived, referred or not."""

from __future__ import annotations

from tests.api.graphql import gql
from tests.attribution.factories import at, make_referral, make_world
from tests.factories import make_api_key
from vouch.api.ids import encode_id
from vouch.attribution import opportunities
from vouch.attribution.opportunities import OpportunityData

LIST = """
query($filter: OpportunityFilterInput, $first: Int, $after: String) {
  opportunities(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id provider crmId status referralId amountMinor currency }
  }
}"""
ONE = """query($id: ID!) { opportunity(id: $id) { id provider crmId stage status referralId
  history { fromStage toStage } } }"""


async def _deals(session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    rows = []
    for provider, crm_id, referral_id, status in [
        ("hubspot", "987", referral.id, "open"),
        ("salesforce", "987", None, "won"),
        ("other", "ERP-1", None, "lost"),
    ]:
        result = await opportunities.upsert_opportunity(
            session,
            OpportunityData(
                provider=provider,
                crm_id=crm_id,
                stage="Stage",
                amount_minor=1000,
                currency="USD",
                status=status,
                referral_id=referral_id,
            ),
            source="test",
            actor=None,
            now=at(1),
        )
        rows.append(result.opportunity)
    await session.commit()
    return referral, rows


async def test_opportunities_include_deals_without_a_referral(client, session, codec):
    referral, rows = await _deals(session, codec)
    key = await make_api_key(session, scopes=["read"])
    everything = (await gql(client, LIST, token=key))["data"]["opportunities"]
    assert everything["totalCount"] == 3
    assert [
        (n["provider"], n["crmId"], n["status"], n["referralId"]) for n in everything["nodes"]
    ] == [
        ("other", "ERP-1", "lost", None),
        ("salesforce", "987", "won", None),
        ("hubspot", "987", "open", encode_id("Referral", referral.id)),
    ]
    by_id = await gql(
        client, LIST, {"filter": {"crmId": "987", "provider": "salesforce"}}, token=key
    )
    assert [n["id"] for n in by_id["data"]["opportunities"]["nodes"]] == [
        encode_id("Opportunity", rows[1].id)
    ]
    unreferred = await gql(client, LIST, {"filter": {"referred": False}}, token=key)
    assert unreferred["data"]["opportunities"]["totalCount"] == 2
    referred = await gql(
        client,
        LIST,
        {"filter": {"referralId": encode_id("Referral", referral.id), "status": ["open"]}},
        token=key,
    )
    assert [n["crmId"] for n in referred["data"]["opportunities"]["nodes"]] == ["987"]
    page = (await gql(client, LIST, {"first": 2}, token=key))["data"]["opportunities"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await gql(client, LIST, {"first": 2, "after": page["pageInfo"]["endCursor"]}, token=key)
    assert [n["crmId"] for n in rest["data"]["opportunities"]["nodes"]] == ["987"]
    one = await gql(client, ONE, {"id": encode_id("Opportunity", rows[0].id)}, token=key)
    assert one["data"]["opportunity"] == {
        "id": encode_id("Opportunity", rows[0].id),
        "provider": "hubspot",
        "crmId": "987",
        "stage": "Stage",
        "status": "open",
        "referralId": encode_id("Referral", referral.id),
        "history": [{"fromStage": None, "toStage": "Stage"}],
    }


async def test_bad_filters_and_missing_ids_are_errors_not_500s(client, session, codec):
    await _deals(session, codec)
    key = await make_api_key(session, scopes=["read"])
    bad = await gql(
        client, LIST, {"filter": {"provider": "pipedrive"}}, token=key, expect_errors=True
    )
    assert bad["errors"][0]["extensions"]["code"] == "INVALID"
    assert bad["errors"][0]["extensions"]["field"] == "filter.provider"
    missing = await gql(
        client, ONE, {"id": encode_id("Opportunity", 999_999)}, token=key, expect_errors=True
    )
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    anonymous = await gql(client, LIST, expect_errors=True)
    assert anonymous["data"] is None


async def test_move_stage_names_the_provider_when_two_crms_share_an_id(client, session, codec):
    await _deals(session, codec)
    key = await make_api_key(session, scopes=["write"])
    move = """mutation($p: String) { moveOpportunityStage(crmId: "987", stage: "Won", status: "won",
      provider: $p) { opportunity { provider status } errors { field code message } } }"""
    ambiguous = (await gql(client, move, {"p": None}, token=key))["data"]["moveOpportunityStage"]
    assert ambiguous["opportunity"] is None
    assert ambiguous["errors"][0]["field"] == "crmId"
    named = (await gql(client, move, {"p": "hubspot"}, token=key))["data"]["moveOpportunityStage"]
    assert named == {"opportunity": {"provider": "hubspot", "status": "won"}, "errors": []}
