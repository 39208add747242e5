"""Issue 14 item 9: production still suggested names for input fields and arguments
(`advocates(filter:{serch:"x"})` -> "Did you mean 'search'?"), without a key."""

from __future__ import annotations

import json

import pytest

from tests.api.test_http import prod_client  # noqa: F401 - fixture reused

DOCUMENTS = [
    ('{ advocates(filter: {serch: "x"}) { totalCount } }', {}),
    ('{ advocates(fitler: {search: "x"}) { totalCount } }', {}),
    ("{ advocates(order: NEWEST_FIRS) { totalCount } }", {}),
    ("{ programs(status: ACTIV) { totalCount } }", {}),
    ('{ advocate(id: "x") { ... on Advocat { id } } }', {}),
    ("{ programs { nodes { rewardRule { id } } } }", {}),
    (
        "query($f: AdvocateFilterInput) { advocates(filter: $f) { totalCount } }",
        {"f": {"serch": "x"}},
    ),
    ("query($o: ListOrder!) { advocates(order: $o) { totalCount } }", {"o": "NEWEST_FIRS"}),
    (
        "mutation($i: AdvocateInput!) { upsertAdvocate(input: $i) { created } }",
        {"i": {"externalId": "x", "emial": "a@b.example"}},
    ),
]


@pytest.mark.parametrize(("document", "variables"), DOCUMENTS)
async def test_production_suggests_no_name_anywhere(prod_client, session, document, variables):  # noqa: F811
    response = await prod_client.post("/graphql", json={"query": document, "variables": variables})
    body = response.json()
    assert response.status_code == 200
    assert body["data"] is None
    assert body["errors"]
    assert "did you mean" not in json.dumps(body).lower()


async def test_development_still_helps(client, session):
    response = await client.post(
        "/graphql", json={"query": '{ advocates(filter: {serch: "x"}) { totalCount } }'}
    )
    assert "Did you mean 'search'?" in response.json()["errors"][0]["message"]
