"""Upserting and importing advocates: by external id, partial updates, per-row errors."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.graphql import gql
from tests.conftest import TEST_SECRET
from tests.factories import make_advocate, make_api_key
from vouch.api.ids import encode_id
from vouch.catalog.advocates import AdvocateData, upsert_advocate
from vouch.core.sessions import session_factory
from vouch.models import Advocate

UPSERT = """
mutation($input: AdvocateInput!) {
  upsertAdvocate(input: $input) {
    created
    advocate { externalId email firstName lastName segment isIcp }
    errors { message field code }
  }
}"""

IMPORT = """
mutation($rows: [AdvocateInput!]!, $policy: ImportErrorPolicy!) {
  importAdvocates(advocates: $rows, errorPolicy: $policy) {
    createdCount updatedCount
    advocates { externalId email }
    errors { field code }
  }
}"""


async def _advocates(session) -> int:
    return int(await session.scalar(select(func.count()).select_from(Advocate)))


async def test_upsert_creates_then_updates_only_given_fields(client, session):
    key = await make_api_key(session, scopes=["write"])
    created = await gql(
        client,
        UPSERT,
        {
            "input": {
                "externalId": "crm-1",
                "email": "Grace@Example.COM",
                "firstName": "Grace",
                "segment": "enterprise",
            }
        },
        token=key,
    )
    assert created["data"]["upsertAdvocate"] == {
        "created": True,
        "advocate": {
            "externalId": "crm-1",
            "email": "Grace@example.com",
            "firstName": "Grace",
            "lastName": None,
            "segment": "enterprise",
            "isIcp": False,
        },
        "errors": [],
    }
    updated = await gql(
        client,
        UPSERT,
        {"input": {"externalId": "crm-1", "lastName": "Hopper", "segment": None, "isIcp": True}},
        token=key,
    )
    assert updated["data"]["upsertAdvocate"] == {
        "created": False,
        "advocate": {
            "externalId": "crm-1",
            "email": "Grace@example.com",
            "firstName": "Grace",
            "lastName": "Hopper",
            "segment": None,
            "isIcp": True,
        },
        "errors": [],
    }
    stored = await session.scalar(select(Advocate).where(Advocate.external_id == "crm-1"))
    assert stored.email_normalized == "grace@example.com"
    assert await _advocates(session) == 1


async def test_upsert_rejects_bad_input_and_writes_nothing(client, session):
    key = await make_api_key(session, scopes=["write"])
    cases = [
        ({"externalId": "a", "email": "not-an-email"}, "email"),
        ({"externalId": "", "email": "a@example.com"}, "externalId"),
        ({"externalId": "x" * 129}, "externalId"),
        ({"externalId": "b", "firstName": "x" * 101}, "firstName"),
        ({"externalId": "c", "isIcp": None}, "isIcp"),
        ({"externalId": "d", "email": "a@" + "x" * 300 + ".com"}, "email"),
    ]
    for values, field in cases:
        payload = (await gql(client, UPSERT, {"input": values}, token=key))["data"][
            "upsertAdvocate"
        ]
        assert payload["advocate"] is None, values
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, "INVALID")], values
    assert await _advocates(session) == 0


async def test_upsert_needs_write_scope(client, session):
    key = await make_api_key(session, scopes=["read"])
    body = await gql(client, UPSERT, {"input": {"externalId": "z"}}, token=key, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await _advocates(session) == 0


async def test_import_all_or_nothing_by_default(client, session):
    await make_advocate(session, external_id="existing", email="old@example.com")
    key = await make_api_key(session, scopes=["write"])
    rows = [
        {"externalId": "existing", "email": "new@example.com"},
        {"externalId": "n1", "email": "broken"},
        {"externalId": "n2", "email": "n2@example.com"},
        {"externalId": "n2", "email": "n2b@example.com"},
    ]
    rejected = (
        await gql(client, IMPORT, {"rows": rows, "policy": "REJECT_EVERYTHING"}, token=key)
    )["data"]["importAdvocates"]
    assert rejected == {
        "createdCount": 0,
        "updatedCount": 0,
        "advocates": [],
        "errors": [
            {"field": "advocates.1.email", "code": "INVALID"},
            {"field": "advocates.3.externalId", "code": "INVALID"},
        ],
    }
    assert await _advocates(session) == 1
    partial = (
        await gql(client, IMPORT, {"rows": rows, "policy": "REJECT_FAILED_ROWS"}, token=key)
    )["data"]["importAdvocates"]
    assert partial["createdCount"] == 1
    assert partial["updatedCount"] == 1
    assert partial["advocates"] == [
        {"externalId": "existing", "email": "new@example.com"},
        {"externalId": "n2", "email": "n2@example.com"},
    ]
    assert len(partial["errors"]) == 2
    assert await _advocates(session) == 2


async def test_import_is_bounded(client, session):
    key = await make_api_key(session, scopes=["write"])
    rows = [{"externalId": f"e{i}"} for i in range(1001)]
    payload = (await gql(client, IMPORT, {"rows": rows, "policy": "REJECT_EVERYTHING"}, token=key))[
        "data"
    ]["importAdvocates"]
    assert payload["errors"] == [{"field": "advocates", "code": "INVALID"}]
    assert await _advocates(session) == 0


async def test_import_many_in_one_statement(client, session, count_queries):
    key = await make_api_key(session, scopes=["write"])
    await gql(client, "{ __typename }", token=key)  # last_used_at written once
    rows = [
        {"externalId": f"bulk-{i}", "email": f"b{i}@example.com", "firstName": f"B{i}"}
        for i in range(200)
    ]
    count_queries.reset()
    payload = (await gql(client, IMPORT, {"rows": rows, "policy": "REJECT_EVERYTHING"}, token=key))[
        "data"
    ]["importAdvocates"]
    assert (payload["createdCount"], payload["errors"]) == (200, [])
    # erased-id check, one upsert, one read-back (the API key is cached after the first call)
    assert count_queries.count == 3
    assert await _advocates(session) == 200


async def test_concurrent_upserts_leave_one_advocate(committing_engine: AsyncEngine):
    factory = session_factory(committing_engine)

    async def one(i: int) -> bool:
        async with factory() as s:
            result = await upsert_advocate(
                s,
                AdvocateData(external_id="race-1", values={"first_name": f"N{i}"}),
                secret=TEST_SECRET,
            )
            await s.commit()
            return result.created

    created = await asyncio.gather(*(one(i) for i in range(20)))
    async with factory() as s:
        rows = (await s.scalars(select(Advocate).where(Advocate.external_id == "race-1"))).all()
        assert len(rows) == 1
    assert created.count(True) == 1


async def test_advocate_list_order_and_filter_validation(client, session, codec):
    from tests.api.builders import make_referral
    from tests.factories import make_link, make_program

    first = await make_advocate(session, segment="smb", score=40.0)
    second = await make_advocate(session, segment="smb", score=80.0)
    program = await make_program(session)
    await make_referral(
        session, link=await make_link(session, codec, advocate=second, program=program)
    )
    key = await make_api_key(session, scopes=["read"])
    q = "query($f: AdvocateFilterInput, $o: ListOrder){ advocates(filter: $f, order: $o){ nodes { externalId } } }"

    async def ids(f, order="OLDEST_FIRST"):
        data = (await gql(client, q, {"f": f, "o": order}, token=key))["data"]["advocates"]
        return [n["externalId"] for n in data["nodes"]]

    assert await ids({"segment": "smb"}, "NEWEST_FIRST") == [second.external_id, first.external_id]
    assert await ids({"minScore": 50, "maxScore": 90}) == [second.external_id]
    assert await ids({"hasReferred": True}) == [second.external_id]
    assert await ids({"hasReferred": False, "segment": "smb"}) == [first.external_id]
    assert await ids({"programId": encode_id("Program", program.id)}) == [second.external_id]
    for bad, message in (
        ({"tier": 4}, "tier must be 1, 2 or 3"),
        ({"minScore": 9, "maxScore": 1}, "minScore must not exceed maxScore"),
    ):
        body = await gql(client, q, {"f": bad}, token=key, expect_errors=True)
        assert body["errors"][0]["message"] == message


async def test_a_full_import_fits_in_one_request(client, session):
    key = await make_api_key(session, scopes=["write"])
    rows = [
        {
            "externalId": f"crm-{i:06d}",
            "email": f"first.last{i}@customer-domain.example",
            "firstName": "Firstname",
            "lastName": "Lastname",
            "accountId": f"acct-{i:06d}",
            "segment": "mid-market",
        }
        for i in range(1000)
    ]
    payload = (await gql(client, IMPORT, {"rows": rows, "policy": "REJECT_EVERYTHING"}, token=key))[
        "data"
    ]["importAdvocates"]
    assert (payload["createdCount"], payload["errors"]) == (1000, [])
    assert await _advocates(session) == 1000


async def test_advocate_by_external_id(client, session, app):
    mine = await make_advocate(session, external_id="crm-mine")
    await make_advocate(session, external_id="crm-other")
    key = await make_api_key(session, scopes=["read"])
    q = "query($e: String){ advocate(externalId: $e){ id externalId } }"
    found = (await gql(client, q, {"e": "crm-mine"}, token=key))["data"]["advocate"]
    assert found == {"id": encode_id("Advocate", mine.id), "externalId": "crm-mine"}
    missing = await gql(client, q, {"e": "nope"}, token=key, expect_errors=True)
    assert missing["errors"][0]["extensions"] == {"code": "NOT_FOUND", "field": "externalId"}
    token = app.state.widget_tokens.mint(mine.id)
    assert (await gql(client, q, {"e": "crm-mine"}, token=token))["data"]["advocate"][
        "externalId"
    ] == "crm-mine"
    other = await gql(client, q, {"e": "crm-other"}, token=token, expect_errors=True)
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    neither = await gql(client, "{ advocate { id } }", token=key, expect_errors=True)
    assert neither["errors"][0]["message"] == "give either id or externalId"
