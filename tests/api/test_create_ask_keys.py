"""createAsk's retry key is idempotencyKey like every other mutation's; requestKey, its old
name, still works for one release (deprecated in the schema) and never together with it."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.api.graphql import gql
from tests.api.test_advocacy_asks import ids, scene
from tests.factories import make_api_key
from vouch.models import Ask

CREATE = """mutation($a: ID!, $p: ID!, $k: String, $r: String) {
  createAsk(advocateId: $a, programId: $p, type: REVIEW, team: SALES,
            idempotencyKey: $k, requestKey: $r) {
    ask { id } errors { field code message } } }"""


async def _asks(session) -> int:
    return int(await session.scalar(select(func.count()).select_from(Ask)) or 0)


async def test_idempotency_key_makes_a_retry_return_the_first_ask(client, session):
    program, person = await scene(session)
    key = await make_api_key(session, scopes=["write"])
    variables = {**ids(program, person), "k": "retry-1"}
    first = (await gql(client, CREATE, variables, token=key))["data"]["createAsk"]
    again = (await gql(client, CREATE, variables, token=key))["data"]["createAsk"]
    assert first["errors"] == []
    assert again == first
    # the deprecated name is the same key: a client moving over mid-retry gets the same ask
    old = (await gql(client, CREATE, {**ids(program, person), "r": "retry-1"}, token=key))["data"][
        "createAsk"
    ]
    assert old == first
    assert await _asks(session) == 1


async def test_both_names_at_once_are_refused_and_nothing_is_queued(client, session):
    program, person = await scene(session)
    key = await make_api_key(session, scopes=["write"])
    both = (await gql(client, CREATE, {**ids(program, person), "k": "a", "r": "b"}, token=key))[
        "data"
    ]["createAsk"]
    assert both == {
        "ask": None,
        "errors": [
            {
                "field": "requestKey",
                "code": "INVALID",
                "message": "give idempotencyKey or the deprecated requestKey, not both",
            }
        ],
    }
    too_long = (await gql(client, CREATE, {**ids(program, person), "k": "x" * 101}, token=key))[
        "data"
    ]["createAsk"]
    assert too_long["errors"][0]["field"] == "idempotencyKey"
    old_too_long = (await gql(client, CREATE, {**ids(program, person), "r": "x" * 101}, token=key))[
        "data"
    ]["createAsk"]
    assert old_too_long["errors"][0]["field"] == "requestKey"
    assert await _asks(session) == 0


async def test_request_key_is_deprecated_in_the_schema(client, session):
    key = await make_api_key(session, scopes=["read"])
    body = await gql(
        client,
        """{ __type(name: "Mutation") { fields { name
             args(includeDeprecated: true) { name isDeprecated deprecationReason } } } }""",
        token=key,
    )
    [create] = [f for f in body["data"]["__type"]["fields"] if f["name"] == "createAsk"]
    args = {a["name"]: a for a in create["args"]}
    assert args["idempotencyKey"]["isDeprecated"] is False
    assert args["requestKey"]["isDeprecated"] is True
    assert "idempotencyKey" in args["requestKey"]["deprecationReason"]
