"""Programs and advocates are readable with an API key; nothing is readable without one."""

from __future__ import annotations

from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_program
from vouch.api.ids import encode_id

PROGRAMS = "query($first:Int,$after:String){ programs(first:$first, after:$after){ totalCount pageInfo{hasNextPage endCursor} nodes{ id name slug } } }"


async def test_requires_authentication(client, session):
    await make_program(session)
    body = await gql(client, PROGRAMS, expect_errors=True)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_rejects_unknown_key(client, session):
    body = await gql(client, PROGRAMS, token="vk_nothing_here", expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_lists_programs_with_cursor_paging(client, session):
    programs = [await make_program(session, name=f"P{i}") for i in range(3)]
    key = await make_api_key(session, scopes=["read"])
    page1 = (await gql(client, PROGRAMS, {"first": 2}, token=key))["data"]["programs"]
    assert page1["totalCount"] == 3
    assert [n["name"] for n in page1["nodes"]] == ["P0", "P1"]
    assert page1["pageInfo"]["hasNextPage"] is True
    page2 = (
        await gql(
            client, PROGRAMS, {"first": 2, "after": page1["pageInfo"]["endCursor"]}, token=key
        )
    )["data"]["programs"]
    assert [n["id"] for n in page2["nodes"]] == [encode_id("Program", programs[2].id)]
    assert page2["pageInfo"]["hasNextPage"] is False


async def test_page_size_is_capped(client, session):
    key = await make_api_key(session, scopes=["read"])
    body = await gql(client, PROGRAMS, {"first": 1000}, token=key, expect_errors=True)
    assert "between 0 and 100" in body["errors"][0]["message"]


async def test_advocate_filters(client, session):
    await make_advocate(session, first_name="Grace", tier=1, score=90.0)
    await make_advocate(session, first_name="Alan", tier=2, score=60.0)
    key = await make_api_key(session, scopes=["admin"])
    q = "query($f:AdvocateFilterInput){ advocates(filter:$f){ totalCount nodes{ firstName tier } } }"
    by_tier = (await gql(client, q, {"f": {"tier": 1}}, token=key))["data"]["advocates"]
    assert by_tier == {"totalCount": 1, "nodes": [{"firstName": "Grace", "tier": 1}]}
    by_search = (await gql(client, q, {"f": {"search": "ala"}}, token=key))["data"]["advocates"]
    assert [n["firstName"] for n in by_search["nodes"]] == ["Alan"]


async def test_widget_token_sees_only_its_advocate(client, session, app):
    mine = await make_advocate(session)
    other = await make_advocate(session)
    token = app.state.widget_tokens.mint(mine.id)
    q = "query($id:ID!){ advocate(id:$id){ externalId } }"
    own = await gql(client, q, {"id": encode_id("Advocate", mine.id)}, token=token)
    assert own["data"]["advocate"]["externalId"] == mine.external_id
    denied = await gql(
        client, q, {"id": encode_id("Advocate", other.id)}, token=token, expect_errors=True
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    listing = await gql(client, "{ advocates { totalCount } }", token=token, expect_errors=True)
    assert listing["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_wrong_id_type_is_a_clear_error(client, session):
    key = await make_api_key(session, scopes=["read"])
    body = await gql(
        client,
        "query($id:ID!){ program(id:$id){ name } }",
        {"id": encode_id("Advocate", 1)},
        token=key,
        expect_errors=True,
    )
    assert body["errors"][0]["message"] == "not a valid Program id"
