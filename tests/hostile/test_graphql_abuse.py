"""The GraphQL abuse suite: every hostile document or transport trick is refused BEFORE any
SQL runs — at most the API-key lookup touches the database. (tests/api/test_http.py checks the
status codes and messages of the basic cases; this suite adds the missing attacks and checks,
statement by statement, that nothing but ``api_keys`` was read.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.test_http import prod_client  # noqa: F401 - fixture reused
from tests.factories import make_api_key, make_program
from vouch.api.view import MAX_BODY_BYTES

PROGRAMS = "{ programs { totalCount } }"


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the previous one twice: 2**levels fields once expanded."""
    parts = ["fragment F0 on Program { id name }"]
    parts += [f"fragment F{i} on Program {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return " ".join(parts) + f" {{ programs {{ nodes {{ ...F{levels - 1} }} }} }}"


def depth_bomb(levels: int) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"links {{ advocate {{ {inner} }} }}"
    return f"{{ advocates {{ nodes {{ {inner} }} }} }}"


# (name, document, a fragment of the refusal message)
DOCUMENTS: list[tuple[str, str, str]] = [
    ("depth bomb", depth_bomb(30), "exceeds maximum operation depth"),
    (
        "alias amplification",
        "{ " + " ".join(f"p{i}: programs {{ totalCount }}" for i in range(200)) + " }",
        "aliases found",
    ),
    ("fragment amplification", fragment_bomb(40), "fields once fragments are expanded"),
    (
        "fragment cycle",
        "fragment A on Program { ...B } fragment B on Program { ...A } "
        "{ programs { nodes { ...A } } }",
        "Cannot spread fragment",
    ),
    (
        "duplicated fields",
        "{ programs { " + " ".join("totalCount" for _ in range(3000)) + " } }",
        "token",
    ),
    (
        "duplicated directives",
        "{ programs @skip(if: false) @skip(if: false) { totalCount } }",
        "can only be used once",
    ),
    (
        "many directives",
        "{ programs { totalCount " + " ".join("@include(if: true)" for _ in range(700)) + " } }",
        "token",
    ),
    ("huge first (over Int)", "{ programs(first: 99999999999) { totalCount } }", "Int cannot"),
    ("unknown field", "{ programs { totalCount password } }", "Cannot query field"),
    ("syntax error", "{ programs { totalCount ", "Syntax Error"),
    (
        "two anonymous operations",
        "{ programs { totalCount } } { programs { totalCount } }",
        "anonymous operation",
    ),
]


def api_statements(count_queries) -> list[str]:
    return [s for s in count_queries.statements if "api_keys" not in s]


@pytest.fixture
async def admin(session):
    await make_program(session)
    key = await make_api_key(session, scopes=["admin"])
    await session.commit()
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize(("name", "document", "message"), DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
async def test_hostile_documents_are_refused_before_sql(
    client, admin, count_queries, name, document, message
):
    count_queries.reset()
    response = await client.post("/graphql", json={"query": document}, headers=admin)
    assert response.status_code == 200
    body = response.json()
    assert body.get("data") is None
    assert message.lower() in json.dumps(body["errors"]).lower(), body["errors"][:2]
    assert api_statements(count_queries) == []


async def test_huge_first_is_a_field_error_without_a_page_query(client, admin, count_queries):
    count_queries.reset()
    response = await client.post(
        "/graphql", json={"query": "{ programs(first: 1000000000) { totalCount } }"}, headers=admin
    )
    body = response.json()
    assert response.status_code == 200
    assert body["data"] is None
    assert body["errors"][0]["message"] == "first must be between 0 and 100"
    assert api_statements(count_queries) == []


@pytest.mark.parametrize(
    ("label", "kwargs", "status"),
    [
        ("batch", {"json": [{"query": PROGRAMS}] * 50}, 400),
        ("GET mutation", {"method": "GET", "params": {"query": "mutation { __typename }"}}, 405),
        (
            "form-encoded",
            {
                "content": "query=" + PROGRAMS,
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            415,
        ),
        (
            "text/plain",
            {"content": json.dumps({"query": PROGRAMS}), "headers": {"content-type": "text/plain"}},
            415,
        ),
        (
            "oversized body",
            {"json": {"query": PROGRAMS, "variables": {"x": "a" * (MAX_BODY_BYTES + 1)}}},
            413,
        ),
        ("oversized GET", {"method": "GET", "params": {"query": "{" + " " * 20_000 + "}"}}, 414),
        ("NUL in body", {"json": {"query": '{ programs(after: "\u0000") { totalCount } }'}}, 400),
        ("not JSON", {"content": b"{nope", "headers": {"content-type": "application/json"}}, 400),
        ("JSON scalar", {"json": 42}, 400),
    ],
)
async def test_hostile_transports_are_refused_before_sql(
    client, admin, count_queries, label, kwargs, status
):
    kwargs = dict(kwargs)
    method = kwargs.pop("method", "POST")
    headers: dict[str, Any] = {**admin, **kwargs.pop("headers", {})}
    count_queries.reset()
    response = await client.request(method, "/graphql", headers=headers, **kwargs)
    assert response.status_code == status, response.text[:200]
    assert api_statements(count_queries) == []


@pytest.mark.parametrize(
    "document",
    [
        '{ __type(name: "Program") { fields { name } } }',
        "{ __schema { types { name } } }",
        "query { a: __schema { queryType { name } } }",
        "fragment S on __Schema { queryType { name } } { __schema { ...S } }",
    ],
)
async def test_production_refuses_introspection_in_every_form(prod_client, session, document):  # noqa: F811
    response = await prod_client.post("/graphql", json={"query": document})
    body = response.json()
    assert body["data"] is None
    assert "introspection" in body["errors"][0]["message"].lower()


@pytest.mark.parametrize(
    "document",
    [
        "{ programz { totalCount } }",
        "{ programs(frist: 5) { totalCount } }",
        "{ programs { totlCount } }",
        "query($x: Strng) { programs { totalCount } }",
    ],
)
async def test_production_gives_no_field_suggestions(prod_client, session, document):  # noqa: F811
    response = await prod_client.post("/graphql", json={"query": document})
    text = json.dumps(response.json())
    assert response.status_code in {200, 400}
    assert "errors" in response.json()
    assert "did you mean" not in text.lower()
