"""Relay's ``node(id:)`` / ``nodes(ids:)``: every entity type by its global id, with each type's
scope, widget-token isolation (someone else's object is null), and clear errors for bad ids."""

from __future__ import annotations

from graphql import GraphQLInterfaceType

from tests.api.graphql import gql
from tests.attribution.factories import make_referral
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.attribution import webhooks
from vouch.attribution.webhooks import EndpointInput
from vouch.core.ids import encode_id

NODES = """
query($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename id
    ... on Referral { email status }
    ... on Advocate { externalId }
    ... on Program { name }
    ... on WebhookEndpoint { url }
  }
}"""
NODE = "query($id: ID!) { node(id: $id) { __typename id } }"


async def _world(session, codec):
    program = await make_program(session, name="Refer a friend")
    mine, other = await make_advocate(session), await make_advocate(session)
    my_link = await make_link(session, codec, advocate=mine, program=program)
    other_link = await make_link(session, codec, advocate=other, program=program)
    my_referral = await make_referral(session, program=program, advocate=mine, link=my_link)
    other_referral = await make_referral(session, program=program, advocate=other, link=other_link)
    endpoint = await webhooks.create_endpoint(
        session, EndpointInput(url="https://crm.example/h", event_types=[])
    )
    await session.flush()
    return program, mine, other, my_link, my_referral, other_referral, endpoint


async def test_every_entity_type_resolves_by_its_id_in_order(client, session, codec):
    program, mine, _, link, referral, _, endpoint = await _world(session, codec)
    key = await make_api_key(session, scopes=["admin"])
    ids = [
        encode_id("Referral", referral.id),
        encode_id("Program", program.id),
        encode_id("Referral", 999_999),
        encode_id("Advocate", mine.id),
        encode_id("WebhookEndpoint", endpoint.id),
        encode_id("ReferralLink", link.id),
    ]
    nodes = (await gql(client, NODES, {"ids": ids}, token=key))["data"]["nodes"]
    assert nodes == [
        {
            "__typename": "Referral",
            "id": ids[0],
            "email": referral.email,
            "status": "LEAD",
        },
        {"__typename": "Program", "id": ids[1], "name": "Refer a friend"},
        None,
        {"__typename": "Advocate", "id": ids[3], "externalId": mine.external_id},
        {"__typename": "WebhookEndpoint", "id": ids[4], "url": "https://crm.example/h"},
        {"__typename": "ReferralLink", "id": ids[5]},
    ]
    one = await gql(client, NODE, {"id": ids[0]}, token=key)
    assert one["data"]["node"] == {"__typename": "Referral", "id": ids[0]}


async def test_every_node_type_is_registered_and_refetchable(client, session, codec):
    from vouch.api.queries.node import KINDS
    from vouch.api.schema import build_schema

    schema = build_schema(production=False)._schema
    node = schema.type_map["Node"]
    assert isinstance(node, GraphQLInterfaceType)
    implementing = {t.name for t in schema.get_possible_types(node)}
    assert implementing == set(KINDS)


def test_every_id_field_is_a_global_entity_id():
    """A normalising client store (Relay) keys records by ``id`` alone: a type with an ``id``
    that is not a Node (a chain step carrying its link's id, say) would be merged with that
    entity. So every object type with an ``id`` is a Node, and chain steps name their entity
    in ``linkId`` / ``opportunityId`` / ``rewardId`` instead."""
    from graphql import GraphQLObjectType

    from vouch.api.schema import build_schema

    schema = build_schema(production=False)._schema
    not_nodes = sorted(
        name
        for name, t in schema.type_map.items()
        if isinstance(t, GraphQLObjectType)
        and not name.startswith("__")
        and "id" in t.fields
        and "Node" not in {i.name for i in t.interfaces}
    )
    assert not_nodes == []

    def fields(name: str) -> set[str]:
        step = schema.type_map[name]
        assert isinstance(step, GraphQLObjectType)
        return set(step.fields)

    assert "linkId" in fields("ChainLink")
    assert "opportunityId" in fields("ChainOpportunity")
    assert "rewardId" in fields("ChainReward")


async def test_scopes_apply_per_type(client, session, codec):
    program, _, _, _, referral, _, endpoint = await _world(session, codec)
    reader = await make_api_key(session, scopes=["read"])
    hook = encode_id("WebhookEndpoint", endpoint.id)
    refused = await gql(client, NODE, {"id": hook}, token=reader, expect_errors=True)
    assert refused["data"] == {"node": None}
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await gql(
        client, NODE, {"id": encode_id("Program", program.id)}, expect_errors=True
    )
    assert anonymous["data"] == {"node": None}
    assert anonymous["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    allowed = await gql(client, NODE, {"id": encode_id("Referral", referral.id)}, token=reader)
    assert allowed["data"]["node"]["__typename"] == "Referral"


async def test_a_widget_token_sees_only_its_own_advocates_objects(client, session, codec, app):
    program, mine, other, link, my_referral, other_referral, _ = await _world(session, codec)
    token = app.state.widget_tokens.mint(mine.id)
    ids = [
        encode_id("Advocate", mine.id),
        encode_id("Advocate", other.id),
        encode_id("Referral", my_referral.id),
        encode_id("Referral", other_referral.id),
        encode_id("ReferralLink", link.id),
    ]
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Referral { email } } }"
    nodes = (await gql(client, query, {"ids": ids}, token=token))["data"]["nodes"]
    # a widget never sees a friend's email; someone else's objects are null, not an error
    assert nodes == [{"id": ids[0]}, None, {"id": ids[2], "email": None}, None, {"id": ids[4]}]
    program_id = encode_id("Program", program.id)
    refused = await gql(client, NODE, {"id": program_id}, token=token, expect_errors=True)
    assert refused["data"] == {"node": None}
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_bad_ids_are_clear_errors(client, session, codec):
    key = await make_api_key(session, scopes=["read"])
    for value, field in (("81", "id"), ("not base64!", "id"), (encode_id("ApiKey", 1), "id")):
        body = await gql(client, NODE, {"id": value}, token=key, expect_errors=True)
        assert body["data"] == {"node": None}, value
        assert body["errors"][0]["message"] == "not a valid id", value
        assert body["errors"][0]["extensions"]["field"] == field, value
    many = await gql(
        client,
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": [encode_id("Program", 1)] * 101},
        token=key,
        expect_errors=True,
    )
    assert many["data"] is None
    assert many["errors"][0]["extensions"]["field"] == "ids"
