"""GraphQL over HTTP, hardened: methods, media types, sizes, limits, production settings."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.api.graphql import gql
from tests.conftest import TEST_SECRET
from tests.factories import make_api_key, make_program
from vouch.core.settings import Settings
from vouch.models import Advocate
from vouch.web.app import Overrides, create_app

UPSERT = 'mutation { upsertAdvocate(input: {externalId: "x1"}) { created } }'
GQL_RESPONSE = "application/graphql-response+json"


async def _advocates(session) -> int:
    return int(await session.scalar(select(func.count()).select_from(Advocate)))


@pytest.fixture
async def prod_client(settings, sessionmaker):
    values: dict[str, Any] = {
        "VOUCH_ENV": "production",
        "VOUCH_SECRET_KEY": TEST_SECRET,
        "VOUCH_HASHID_SALT": "a-production-grade-salt-0123456789abcdef",
        "VOUCH_PUBLIC_BASE_URL": "http://testserver",
        "VOUCH_DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": "postgresql://unused-in-tests/x",
    }
    prod = Settings(**values)
    app = create_app(prod, Overrides(sessionmaker=sessionmaker))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


async def test_get_serves_queries_but_not_mutations(client, session):
    await make_program(session)
    key = await make_api_key(session, scopes=["admin"])
    auth = {"authorization": f"Bearer {key}"}
    ok = await client.get("/graphql", params={"query": "{ programs { totalCount } }"}, headers=auth)
    assert ok.status_code == 200
    assert ok.json() == {"data": {"programs": {"totalCount": 1}}}
    refused = await client.get("/graphql", params={"query": UPSERT}, headers=auth)
    assert refused.status_code == 405
    assert await _advocates(session) == 0


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "query=" + UPSERT),
        ("text/plain", json.dumps({"query": UPSERT})),
        (
            "multipart/form-data; boundary=xyz",
            '--xyz\r\nContent-Disposition: form-data; name="query"\r\n\r\n'
            + UPSERT
            + "\r\n--xyz--\r\n",
        ),
        ("", json.dumps({"query": UPSERT})),
    ],
)
async def test_cross_site_content_types_are_refused(client, session, content_type, body):
    key = await make_api_key(session, scopes=["admin"])
    response = await client.post(
        "/graphql",
        content=body,
        headers={"content-type": content_type, "authorization": f"Bearer {key}"},
    )
    assert response.status_code == 415
    assert await _advocates(session) == 0


async def test_oversized_bodies_are_refused_before_parsing(client, session):
    key = await make_api_key(session, scopes=["admin"])
    auth = {"authorization": f"Bearer {key}"}
    huge = {
        "query": 'mutation($e: String){ upsertAdvocate(input: {externalId: "x1", email: $e}) { created } }',
        "variables": {"e": "a" * 1_000_000},
    }
    response = await client.post("/graphql", json=huge, headers=auth)
    assert response.status_code == 413

    async def chunks():  # no content-length: counted while reading
        payload = json.dumps(huge).encode()
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    streamed = await client.post(
        "/graphql", content=chunks(), headers={**auth, "content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await _advocates(session) == 0


async def test_a_long_string_under_the_size_limit_is_a_field_error(client, session):
    key = await make_api_key(session, scopes=["write"])
    q = 'mutation($n: String){ upsertAdvocate(input: {externalId: "x1", firstName: $n}) { errors { field code } } }'
    body = await gql(client, q, {"n": "n" * 90_000}, token=key)
    assert body["data"]["upsertAdvocate"]["errors"] == [{"field": "firstName", "code": "INVALID"}]
    assert await _advocates(session) == 0


async def test_batching_is_off(client, session):
    key = await make_api_key(session, scopes=["read"])
    response = await client.post(
        "/graphql",
        json=[{"query": "{ __typename }"}, {"query": "{ __typename }"}],
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 400


async def test_graphql_response_media_type_and_status_codes(client, session):
    key = await make_api_key(session, scopes=["read"])
    headers = {"authorization": f"Bearer {key}", "accept": GQL_RESPONSE}
    ok = await client.post(
        "/graphql", json={"query": "{ programs { totalCount } }"}, headers=headers
    )
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith(GQL_RESPONSE)
    assert ok.json() == {"data": {"programs": {"totalCount": 0}}}
    for query in (
        "{ programs { totalCount ",
        "{ programs { noSuchField } }",
        "query($f: Int!){ programs(first: $f){ totalCount } }",
    ):
        bad = await client.post("/graphql", json={"query": query}, headers=headers)
        assert bad.status_code == 400, query
        assert bad.headers["content-type"].startswith(GQL_RESPONSE)
        assert "data" not in bad.json()
        assert bad.json()["errors"]
    # a field error during execution is still a 200 with data
    denied = await client.post(
        "/graphql", json={"query": "{ programs { totalCount } }"}, headers={"accept": GQL_RESPONSE}
    )
    assert denied.status_code == 200
    assert denied.json()["data"] is None
    # plain application/json keeps the legacy 200 for request errors
    legacy = await client.post(
        "/graphql",
        json={"query": "{ programs { totalCount "},
        headers={"authorization": f"Bearer {key}"},
    )
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")


async def test_depth_alias_and_token_limits(client, session):
    key = await make_api_key(session, scopes=["read"])
    deep = "{ advocates { nodes { links { advocate { links { advocate { links { advocate { links { advocate { links { advocate { id } } } } } } } } } } } } }"
    body = await gql(client, deep, token=key, expect_errors=True)
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    aliases = " ".join(f"a{i}: name" for i in range(11))
    spread = f"fragment P on Program {{ {aliases} }} {{ programs {{ nodes {{ ...P }} }} x: programs {{ nodes {{ ...P }} }} }}"
    body = await gql(client, spread, token=key, expect_errors=True)
    assert "aliases found" in body["errors"][0]["message"]
    tokens = "{ " + " ".join("__typename" for _ in range(2100)) + " }"
    body = await gql(client, tokens, token=key, expect_errors=True)
    assert "token" in body["errors"][0]["message"].lower()


async def test_development_serves_graphiql_and_introspection(client, session):
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    body = await gql(client, "{ __schema { queryType { name } } }")
    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}


async def test_production_hides_the_schema(prod_client, session):
    page = await prod_client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 404
    body = await gql(prod_client, "{ __schema { queryType { name } } }", expect_errors=True)
    assert body["data"] is None
    assert "introspection" in body["errors"][0]["message"].lower()
    typo = await gql(prod_client, "{ program { id } }", expect_errors=True)
    assert "Did you mean" not in typo["errors"][0]["message"]
    # Variables are coerced at execution, after validation: no enum names spelled out there.
    key = await make_api_key(session, scopes=["read"])
    response = await prod_client.post(
        "/graphql",
        json={
            "query": "query($o: ListOrder!) { advocates(order: $o) { totalCount } }",
            "variables": {"o": "NEWEST_FIRS"},
        },
        headers={"authorization": f"Bearer {key}"},
    )
    message = response.json()["errors"][0]["message"]
    assert "NEWEST_FIRS" in message
    assert "Did you mean" not in message
    assert "NEWEST_FIRST" not in message


async def test_production_masks_and_logs_bugs_with_the_request_id(
    prod_client, session, monkeypatch, caplog
):
    key = await make_api_key(session, scopes=["read"])

    async def broken(*args, **kwargs):
        raise RuntimeError("connection string postgres://secret@db")

    monkeypatch.setattr("vouch.api.queries.programs.list_programs", broken)
    caplog.set_level(logging.DEBUG, logger="vouch.graphql")
    response = await prod_client.post(
        "/graphql",
        json={"query": "{ programs { totalCount } }"},
        headers={"authorization": f"Bearer {key}", "x-request-id": "req-123"},
    )
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == "Unexpected error."
    assert "secret" not in response.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "req-123" in errors[0].getMessage()
    assert errors[0].exc_info[0] is RuntimeError


async def test_production_answers_503_when_the_database_is_away(prod_client, session, monkeypatch):
    key = await make_api_key(session, scopes=["read"])

    async def away(*args, **kwargs):
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr("vouch.api.queries.programs.list_programs", away)
    response = await prod_client.post(
        "/graphql",
        json={"query": "{ programs { totalCount } }"},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 503
    assert response.headers["retry-after"]


async def test_expected_errors_are_not_logged_as_tracebacks(prod_client, session, caplog):
    caplog.set_level(logging.DEBUG, logger="vouch.graphql")
    body = await gql(prod_client, "{ programs { totalCount } }", expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["errors"][0]["message"].startswith("authentication required")
    key = await make_api_key(session, scopes=["read"])
    body = await gql(
        prod_client, 'query{ program(id: "nope") { id } }', token=key, expect_errors=True
    )
    assert body["errors"][0]["extensions"] == {"code": "INVALID", "field": "id"}
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert all(r.exc_info is None for r in caplog.records)


async def test_cors_allowlist_without_credentials(settings, sessionmaker):
    allowed = settings.model_copy(update={"cors_origins": ["https://app.example.com"]})
    app = create_app(allowed, Overrides(sessionmaker=sessionmaker))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        preflight = {
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        }
        ok = await c.options("/graphql", headers={"origin": "https://app.example.com", **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "access-control-allow-credentials" not in ok.headers
        evil = await c.options("/graphql", headers={"origin": "https://evil.example", **preflight})
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers
        response = await c.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"origin": "https://app.example.com"},
        )
        assert "set-cookie" not in response.headers


async def test_nul_characters_are_refused_at_the_edge(client, session):
    key = await make_api_key(session, scopes=["write"])
    auth = {"authorization": f"Bearer {key}"}
    q = 'mutation($n: String){ upsertAdvocate(input: {externalId: "x1", firstName: $n}) { created } }'
    posted = await client.post(
        "/graphql", json={"query": q, "variables": {"n": "a\x00b"}}, headers=auth
    )
    assert posted.status_code == 400
    got = await client.get(
        "/graphql",
        params={"query": '{ advocates(filter: {search: "a\x00"}) { totalCount } }'},
        headers=auth,
    )
    assert got.status_code == 400
    assert await _advocates(session) == 0


async def test_repeated_documents_skip_parsing_and_validation(app, client, session):
    (graphql,) = [r.endpoint for r in app.router.routes if getattr(r, "path", "") == "/graphql"]
    cache: Any = graphql.schema.documents.get
    key = await make_api_key(session, scopes=["read"])
    query = "query CacheProbe { programs(first: 3) { totalCount } }"
    await gql(client, query, token=key)
    before = cache.cache_info()
    await gql(client, query, token=key)
    after = cache.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 0)


async def test_overlong_query_strings_are_refused(client):
    response = await client.get("/graphql", params={"query": "{ __typename }" + " " * 20_000})
    assert response.status_code == 414


async def test_revoked_key_stops_at_once_despite_the_cache(client, session):
    from sqlalchemy import select

    from vouch.access.api_keys import revoke_api_key
    from vouch.models import ApiKey

    key = await make_api_key(session, scopes=["read"], name="short-lived")
    assert "errors" not in (await gql(client, "{ programs { totalCount } }", token=key))
    key_id = await session.scalar(select(ApiKey.id).where(ApiKey.name == "short-lived"))
    await revoke_api_key(session, int(key_id or 0))
    refused = await gql(client, "{ programs { totalCount } }", token=key, expect_errors=True)
    assert refused["errors"][0]["message"] == "invalid or revoked API key"


async def test_posts_asking_for_a_stream_get_a_clear_answer(client, session):
    """Vouch has no subscriptions: an SSE or incremental-delivery Accept header still gets an
    answer, not a hang or a 500."""
    key = await make_api_key(session, scopes=["read"])
    for accept in ("text/event-stream", "multipart/mixed; deferSpec=20220824"):
        response = await client.post(
            "/graphql",
            json={"query": "{ programs { totalCount } }"},
            headers={"authorization": f"Bearer {key}", "accept": accept},
        )
        assert response.status_code < 500, (accept, response.status_code)


async def test_post_operation_fields_of_the_wrong_type_are_400s(client, session):
    key = await make_api_key(session, scopes=["read"])
    auth = {"authorization": f"Bearer {key}"}
    for body, reason in (
        ({"query": 42}, "`query` must be a string"),
        ({"query": "{ __typename }", "variables": [1]}, "`variables` must be an object"),
        ({"query": "{ __typename }", "extensions": "x"}, "`extensions` must be an object"),
        ({"variables": {}}, "No GraphQL query found"),
        ({"query": "{ __typename }", "operationName": "Nope"}, "Nope"),
    ):
        response = await client.post("/graphql", json=body, headers=auth)
        assert response.status_code == 400, body
        assert reason in response.text, (body, response.text)
    broken = await client.post(
        "/graphql",
        content=b'{"query": "{ __typename }"',
        headers={**auth, "content-type": "application/json"},
    )
    assert (broken.status_code, broken.text) == (400, "Unable to parse request body as JSON")
