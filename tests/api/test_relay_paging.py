"""Relay connections: first/after and last/before, a complete PageInfo, cursors bound to the
connection that issued them, and ``first: 0`` that never leaves a client without a cursor."""

from __future__ import annotations

from typing import Any

from tests.api.builders import make_referral
from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.core.ids import encode_id

PROGRAMS = """query($first: Int, $after: String, $last: Int, $before: String) {
  programs(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { name } }
  }
}"""
REFERRALS = """query($first: Int, $after: String, $last: Int, $before: String) {
  referrals(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    nodes { email }
  }
}"""


async def _programs(client, key, **variables: Any) -> dict[str, Any]:
    body = await gql(client, PROGRAMS, variables, token=key)
    return body["data"]["programs"]  # type: ignore[no-any-return]


def _names(page: dict[str, Any]) -> list[str]:
    return [edge["node"]["name"] for edge in page["edges"]]


async def test_forward_and_backward_pages_of_a_list(client, session):
    for name in "ABCDE":
        await make_program(session, name=name)
    key = await make_api_key(session, scopes=["read"])

    first = await _programs(client, key, first=2)
    assert _names(first) == ["A", "B"]
    info = first["pageInfo"]
    assert (info["hasNextPage"], info["hasPreviousPage"]) == (True, False)
    assert (info["startCursor"], info["endCursor"]) == (
        first["edges"][0]["cursor"],
        first["edges"][1]["cursor"],
    )
    second = await _programs(client, key, first=2, after=info["endCursor"])
    assert _names(second) == ["C", "D"]
    assert (second["pageInfo"]["hasNextPage"], second["pageInfo"]["hasPreviousPage"]) == (
        True,
        True,
    )
    last = await _programs(client, key, last=2)
    assert _names(last) == ["D", "E"]  # still in the list's order
    assert (last["pageInfo"]["hasNextPage"], last["pageInfo"]["hasPreviousPage"]) == (False, True)
    before = await _programs(client, key, last=2, before=last["pageInfo"]["startCursor"])
    assert _names(before) == ["B", "C"]
    assert (before["pageInfo"]["hasNextPage"], before["pageInfo"]["hasPreviousPage"]) == (
        True,
        True,
    )
    start = await _programs(client, key, last=5, before=before["pageInfo"]["startCursor"])
    assert _names(start) == ["A"]
    assert start["pageInfo"]["hasPreviousPage"] is False
    between = await _programs(
        client, key, first=10, after=first["edges"][0]["cursor"], before=last["edges"][1]["cursor"]
    )
    assert _names(between) == ["B", "C", "D"]
    assert {p["totalCount"] for p in (first, second, last, before, start, between)} == {5}


async def test_referral_pages_backwards_newest_first(client, session, codec):
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=await make_program(session))
    for i in range(5):
        await make_referral(session, link=link, email=f"friend{i}@example.org")
    key = await make_api_key(session, scopes=["read"])
    newest = (await gql(client, REFERRALS, {"first": 2}, token=key))["data"]["referrals"]
    assert [n["email"] for n in newest["nodes"]] == ["friend4@example.org", "friend3@example.org"]
    oldest = (await gql(client, REFERRALS, {"last": 2}, token=key))["data"]["referrals"]
    assert [n["email"] for n in oldest["nodes"]] == ["friend1@example.org", "friend0@example.org"]
    assert oldest["pageInfo"]["hasPreviousPage"] is True
    assert oldest["pageInfo"]["hasNextPage"] is False
    middle = await gql(
        client, REFERRALS, {"last": 1, "before": oldest["pageInfo"]["startCursor"]}, token=key
    )
    page = middle["data"]["referrals"]
    assert [n["email"] for n in page["nodes"]] == ["friend2@example.org"]
    assert (page["totalCount"], page["pageInfo"]["hasNextPage"]) == (5, True)


async def test_a_cursor_works_only_in_the_list_that_issued_it(client, session, codec):
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=await make_program(session))
    await make_referral(session, link=link)
    await make_referral(session, link=link)
    key = await make_api_key(session, scopes=["read"])
    page = (await gql(client, REFERRALS, {"first": 1}, token=key))["data"]["referrals"]
    cursor = page["pageInfo"]["endCursor"]
    for query, variables in (
        ("query($a: String) { advocates(after: $a) { totalCount } }", {"a": cursor}),
        ("query($a: String) { programs(before: $a) { totalCount } }", {"a": cursor}),
    ):
        body = await gql(client, query, variables, token=key, expect_errors=True)
        assert body["data"] is None
        [error] = body["errors"]
        assert error["message"].startswith("this cursor belongs to another list; use a cursor")
        assert error["extensions"]["code"] == "INVALID"
    nested = """query($id: ID!, $a: String) { advocate(id: $id) {
      referrals(first: 1, after: $a) { nodes { id } } } }"""
    refused = await gql(
        client,
        nested,
        {"id": encode_id("Advocate", advocate.id), "a": cursor},
        token=key,
        expect_errors=True,
    )
    assert "use a cursor from Advocate.referrals" in refused["errors"][0]["message"]
    for bad in ("c:1", "bm90IGEgY3Vyc29y", "x" * 500):
        body = await gql(client, REFERRALS, {"after": bad}, token=key, expect_errors=True)
        assert body["errors"][0]["message"] == "not a valid cursor", bad
    both = await gql(client, REFERRALS, {"first": 1, "last": 1}, token=key, expect_errors=True)
    assert both["errors"][0]["message"] == "give first or last, not both"


async def test_first_zero_counts_and_gives_a_cursor_to_go_on_from(client, session):
    for name in "ABC":
        await make_program(session, name=name)
    key = await make_api_key(session, scopes=["read"])
    zero = await _programs(client, key, first=0)
    assert (zero["totalCount"], zero["edges"]) == (3, [])
    assert zero["pageInfo"]["hasNextPage"] is True
    assert zero["pageInfo"]["endCursor"] is not None
    assert _names(await _programs(client, key, first=2, after=zero["pageInfo"]["endCursor"])) == [
        "A",
        "B",
    ]
    one = await _programs(client, key, first=1)
    after_one = await _programs(client, key, first=0, after=one["pageInfo"]["endCursor"])
    assert after_one["pageInfo"]["endCursor"] == one["pageInfo"]["endCursor"]
    assert after_one["pageInfo"]["hasNextPage"] is True
    at_end = await _programs(client, key, first=3)
    done = await _programs(client, key, first=0, after=at_end["pageInfo"]["endCursor"])
    assert done["pageInfo"]["hasNextPage"] is False
    last_zero = await _programs(client, key, last=0)
    assert last_zero["pageInfo"]["hasPreviousPage"] is True
    assert _names(
        await _programs(client, key, last=1, before=last_zero["pageInfo"]["startCursor"])
    ) == ["C"]


async def test_nested_referrals_page_like_any_connection(client, session, codec):
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=await make_program(session))
    for i in range(3):
        await make_referral(session, link=link, email=f"friend{i}@example.org")
    key = await make_api_key(session, scopes=["read"])
    query = """query($id: ID!, $a: String) { advocate(id: $id) {
      referrals(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor }
        nodes { email } } } }"""
    variables = {"id": encode_id("Advocate", advocate.id)}
    first = (await gql(client, query, variables, token=key))["data"]["advocate"]["referrals"]
    assert [n["email"] for n in first["nodes"]] == ["friend2@example.org", "friend1@example.org"]
    assert (first["totalCount"], first["pageInfo"]["hasNextPage"]) == (3, True)
    variables["a"] = first["pageInfo"]["endCursor"]
    rest = (await gql(client, query, variables, token=key))["data"]["advocate"]["referrals"]
    assert [n["email"] for n in rest["nodes"]] == ["friend0@example.org"]
    assert (rest["totalCount"], rest["pageInfo"]["hasNextPage"]) == (3, False)


async def test_webhook_endpoints_are_a_connection(client, session):
    from vouch.attribution import webhooks
    from vouch.attribution.webhooks import EndpointInput

    for n in range(3):
        await webhooks.create_endpoint(
            session, EndpointInput(url=f"https://crm{n}.example/h", event_types=[])
        )
    key = await make_api_key(session, scopes=["admin"])
    query = """query($a: String) { webhookEndpoints(first: 2, after: $a) {
      totalCount pageInfo { hasNextPage endCursor } nodes { url } } }"""
    page = (await gql(client, query, {}, token=key))["data"]["webhookEndpoints"]
    assert [n["url"] for n in page["nodes"]] == ["https://crm0.example/h", "https://crm1.example/h"]
    rest = await gql(client, query, {"a": page["pageInfo"]["endCursor"]}, token=key)
    assert rest["data"]["webhookEndpoints"]["nodes"] == [{"url": "https://crm2.example/h"}]
