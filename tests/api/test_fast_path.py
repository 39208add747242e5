"""The GraphQL speed machinery (``api.speed``) changes how fast answers come, never what they are.

One database (the demo), two apps: one with every piece of ``api.speed`` installed (production's
default), one with none (``VOUCH_GRAPHQL_FAST_PATH=false``: strawberry's resolver wrappers,
graphql-core's ``execute_field``, strawberry's generic view). Every query runs on both and the
two answers must be identical: status, data, and each error's message, path and extensions.
The queries are the API's representative set (pages, nested objects, reports, the widget's
``me`` and widget.js's own query), hand-written error cases, and queries generated from the
committed schema by hypothesis-graphql (a fixed seed, so a failure reproduces)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes, queries

from tests.api.test_access import _widget_js_query
from tests.api.test_production_path import QUERIES
from vouch.access.api_keys import create_api_key
from vouch.api import speed
from vouch.cli.demo_seed import seed_demo_data
from vouch.core.clock import utcnow
from vouch.core.codes import LinkCodec
from vouch.core.security import WidgetTokens
from vouch.core.settings import Settings
from vouch.models.enums import Scope
from vouch.web.app import Overrides, create_app

SDL = (Path(__file__).resolve().parents[2] / "api" / "schema.graphql").read_text()
PER_ROOT_FIELD = 3

ERROR_CASES = [
    "{ nope }",
    "{ programs(first: -1) { totalCount } }",
    '{ referrals(first: 5, after: "not-a-cursor") { nodes { id } } }',
    '{ node(id: "UHJvZ3JhbTo5OTk5OTk=") { id } }',
    '{ referral(id: "garbage") { id } }',
    "query { programs(first: 5) { nodes { id ...F } } } fragment F on Program { slug }",
    "{ programs { totalCount",
    'mutation { recordConversion(input: {redemptionCode: "NOPE", kind: PURCHASE, '
    'externalRef: "x", amountMinor: 1}) { errors { code field message } } }',
]


def _generated_queries() -> list[str]:
    """Documents hypothesis-graphql builds from the committed SDL, a few per root query field
    (one field per document, so one bad argument does not null a whole mixed document)."""
    found: list[str] = []
    scalars = {
        "Date": st.dates().map(lambda d: nodes.String(d.isoformat())),
        "DateTime": st.datetimes().map(lambda d: nodes.String(d.isoformat() + "Z")),
        "JSON": st.just(nodes.String("{}")),
    }
    roots = graphql.build_schema(SDL).query_type
    assert roots is not None
    for name in sorted(roots.fields):

        @seed(19)
        @hypothesis_settings(
            max_examples=PER_ROOT_FIELD,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(queries(SDL, fields=[name], custom_scalars=scalars, allow_x00=False))
        def collect(document: object) -> None:
            found.append(str(document))

        collect()
    return found


def _without_optional_arguments(document: str) -> str:
    """The document with every optional argument removed: random ids, cursors and page sizes
    make most generated queries fail validation, and the data path needs coverage too."""
    schema = graphql.build_schema(SDL)
    info = graphql.TypeInfo(schema)

    class Strip(graphql.Visitor):
        def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
            argument = info.get_argument()
            if argument is not None and not graphql.is_non_null_type(argument.type):
                return graphql.REMOVE
            return None

    stripped = graphql.visit(graphql.parse(document), graphql.TypeInfoVisitor(info, Strip()))
    return graphql.print_ast(stripped)


@pytest.fixture
async def demo(session, settings: Settings, codec: LinkCodec) -> dict[str, str]:
    summary = await seed_demo_data(session, codec, secret=settings.resolved_secret(), now=utcnow())
    key = await create_api_key(session, name="differential", scopes=[Scope.ADMIN])
    await session.commit()
    tokens = WidgetTokens(settings.resolved_secret(), settings.widget_token_ttl_seconds)
    return {"key": key.plaintext, "widget": tokens.mint(summary.advocate_id)}


def _comparable(response: httpx.Response) -> Any:
    body = response.json()
    errors = [
        (e.get("message"), e.get("path"), e.get("extensions")) for e in body.get("errors") or []
    ]
    return response.status_code, body.get("data"), errors


async def test_every_query_answers_the_same_with_and_without_the_speed_machinery(
    demo: dict[str, str], settings: Settings, sessionmaker: Any
) -> None:
    fast = create_app(settings, Overrides(sessionmaker=sessionmaker, graphql_speed=speed.ALL))
    plain = create_app(settings, Overrides(sessionmaker=sessionmaker, graphql_speed=speed.NONE))
    admin = {"authorization": f"Bearer {demo['key']}"}
    widget = {"authorization": f"Bearer {demo['widget']}"}
    cases: list[tuple[str, dict[str, str]]] = [(q, admin) for q in QUERIES.values()]
    cases += [(_widget_js_query(), widget), ("{ me { id points referralCount } }", widget)]
    cases += [(q, admin) for q in ERROR_CASES]
    cases += [(q, widget) for q in ERROR_CASES[:4]]
    generated = _generated_queries()
    assert len(generated) >= 100
    cases += [(q, admin) for q in generated]
    stripped = sorted({_without_optional_arguments(q) for q in generated})
    cases += [(q, admin) for q in stripped]

    answered_with_data = 0
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=fast), base_url="http://t") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url="http://t") as b,
    ):
        for query, headers in cases:
            first = _comparable(await a.post("/graphql", json={"query": query}, headers=headers))
            second = _comparable(await b.post("/graphql", json={"query": query}, headers=headers))
            assert first == second, query
            # asked again, the fast app reuses the subfields it collected (piece 4)
            again = _comparable(await a.post("/graphql", json={"query": query}, headers=headers))
            assert again == first, query
            answered_with_data += first[1] is not None
    # The comparison means something only if many queries got as far as data.
    assert answered_with_data > len(stripped) // 2


def test_the_plain_schema_installs_nothing() -> None:
    from vouch.api.schema import build_schema

    plain = build_schema(production=False, fast=False)
    fast = build_schema(production=False, fast=True)
    assert plain.execution_context_class is not speed.VouchExecutionContext
    assert fast.execution_context_class is speed.VouchExecutionContext
    assert speed.install(build_schema(production=False, fast=False), speed.NONE) == 0
    assert speed.install(build_schema(production=False, fast=False), speed.ALL) > 100


def _schema(app: Any) -> Any:
    return next(r for r in app.routes if getattr(r, "path", "") == "/graphql").app.schema


async def test_collected_subfields_are_reused_only_for_documents_without_directives(
    demo: dict[str, str], settings: Settings, sessionmaker: Any
) -> None:
    """Piece 4: a document's collected subfields are kept with it and reused by the next
    request; a document with a directive (whose variables decide which fields are collected)
    is collected afresh every time."""
    app = create_app(settings, Overrides(sessionmaker=sessionmaker, graphql_speed=speed.ALL))
    documents = _schema(app).documents
    widget = {"authorization": f"Bearer {demo['widget']}"}
    admin = {"authorization": f"Bearer {demo['key']}"}
    plain = _widget_js_query()
    switched = (
        "query W($links: Boolean!) { me { externalId "
        "links @include(if: $links) { code clicks { total } } } }"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        answers = [
            (await c.post("/graphql", json={"query": plain}, headers=widget)).json()
            for _ in range(3)
        ]
        assert "errors" not in answers[0]
        assert answers[0]["data"]["me"]["links"]
        assert answers[0] == answers[1] == answers[2]
        memo = documents.get(plain).subfields
        assert memo  # me, its links, their clicks, rewards, next ask, prompt

        for links in (True, False, True):
            body = (
                await c.post(
                    "/graphql",
                    json={"query": switched, "variables": {"links": links}},
                    headers=widget,
                )
            ).json()
            assert "errors" not in body, body
            assert ("links" in body["data"]["me"]) is links
        assert documents.get(switched).subfields is None

        # one abstract field, two runtime types: each keeps its own subfields
        ids = (
            await c.post(
                "/graphql",
                json={
                    "query": "{ programs(first: 1) { nodes { id } } "
                    "advocates(first: 1) { nodes { id } } }"
                },
                headers=admin,
            )
        ).json()["data"]
        nodes = "{ a: node(id: $p) { ...F } b: node(id: $a) { ...F } }"
        query = (
            f"query N($p: ID!, $a: ID!) {nodes} "
            "fragment F on Node { id ... on Program { slug } ... on Advocate { externalId } }"
        )
        variables = {
            "p": ids["programs"]["nodes"][0]["id"],
            "a": ids["advocates"]["nodes"][0]["id"],
        }
        for _ in range(2):
            body = (
                await c.post(
                    "/graphql", json={"query": query, "variables": variables}, headers=admin
                )
            ).json()
            assert "errors" not in body, body
            assert set(body["data"]["a"]) == {"id", "slug"}
            assert set(body["data"]["b"]) == {"id", "externalId"}
