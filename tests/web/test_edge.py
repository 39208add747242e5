"""The HTTP edge (issue 14, items 4, 8 and 14): bodies are size-checked before they are read
and capped while they stream, multipart is refused, hostile JSON is a 4xx, redirects never
reflect the Host header, production refuses unknown hosts, and log lines carry no values."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from starlette.types import Message

from tests.factories import make_advocate, make_api_key
from tests.web.conftest import count, make_setup
from vouch.core.engine import create_engine
from vouch.models import Conversion, OfferRedemption, RateLimitHit, Referral, ShareEvent
from vouch.web.app import Overrides, create_app

CHUNK = 64 * 1024


@pytest.fixture
async def api_key(session):
    key = await make_api_key(session, scopes=["admin"])
    await session.commit()
    return key


class Counting:
    """A request body that counts how many chunks the server pulled from it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.total:
            self.pulled += 1
            sent += CHUNK
            yield b"a" * CHUNK


UNAUTHENTICATED_POSTS = [
    "/webhooks/inbound",
    "/share/events",
    "/console/login",
    "/console/logout",
    "/graphql",
    "/api/redemptions",
    "/api/conversions",
    "/claim",
    "/r/abcdefghij/claim",
]


@pytest.mark.parametrize("path", UNAUTHENTICATED_POSTS)
async def test_an_oversized_content_length_is_refused_before_any_byte_is_read(client, path):
    body = Counting(300 * 1024 * 1024)
    response = await client.post(
        path,
        content=body,
        headers={"content-length": str(300 * 1024 * 1024), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "message": "the request body is larger than this endpoint accepts",
    }
    assert response.headers["connection"] == "close"
    assert body.pulled == 0


@pytest.mark.parametrize(
    ("path", "limit"),
    [("/share/events", 4096), ("/webhooks/inbound", 256 * 1024), ("/console/login", 16_384)],
)
async def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(client, session, path, limit):
    body = Counting(300 * 1024 * 1024)  # chunked: no Content-Length
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert body.pulled == limit // CHUNK + 1  # the chunk that crossed the limit, no more
    assert await count(session, ShareEvent) == 0


@pytest.mark.parametrize("path", ["/console/login", "/console/logout", "/claim", "/share/events"])
async def test_endpoints_that_take_no_files_refuse_multipart(client, path):
    response = await client.post(
        path, files={"upload": ("big.bin", b"x" * 1_000)}, data={"csrf": "x"}
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


async def test_a_body_that_never_finishes_gets_408_within_the_read_deadline(settings, sessionmaker):
    app = create_app(
        settings.model_copy(update={"body_read_timeout": 0.3}), Overrides(sessionmaker=sessionmaker)
    )
    messages: list[Message] = []
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b"email=a", "more_body": True}
        await asyncio.sleep(3600)  # a client sending nothing more
        raise AssertionError

    async def send(message: Message) -> None:
        messages.append(message)

    scope = _scope("POST", "/claim", [(b"content-type", b"application/x-www-form-urlencoded")])
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    assert messages[0]["status"] == 408


async def test_a_client_that_disconnects_mid_body_is_not_an_error(app, caplog):
    messages: list[Message] = []
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b'{"kind":', "more_body": True}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)

    with caplog.at_level(logging.INFO):
        await app(
            _scope("POST", "/share/events", [(b"content-type", b"application/json")]), receive, send
        )
    assert messages == []  # nobody to answer
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


HOSTILE_JSON = [
    ('{"kind": "copy", "channel": "x", "token": "\\ud800"}', "lone surrogate"),
    ("[" * 2000 + "]" * 2000, "deep nesting"),
]


@pytest.mark.parametrize(("body", "label"), HOSTILE_JSON)
async def test_hostile_json_to_share_events_is_400(client, session, body, label):
    response = await client.post(
        "/share/events", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, label
    assert response.json() == {"error": "not valid JSON", "field": None}
    assert await count(session, ShareEvent) == 0


@pytest.mark.parametrize("path", ["/api/redemptions", "/api/conversions"])
@pytest.mark.parametrize(
    "body",
    [
        '{"code": "ABCD-EFGH-JKLM-NPQR", "redeemedBy": "acct-\\ud800-secret-value"}',
        '{"redemptionCode": "ABCD", "kind": "signup", "externalRef": "\\udfff"}',
        "[" * 2000 + "]" * 2000,
    ],
)
async def test_hostile_json_to_the_rest_api_is_400_and_logs_nothing(
    client, session, api_key, path, body, caplog
):
    with caplog.at_level(logging.DEBUG):
        response = await client.post(
            path,
            content=body,
            headers={
                "authorization": f"Bearer {api_key}",
                "idempotency-key": "k-1",
                "content-type": "application/json",
            },
        )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the body is not valid JSON"
    assert await count(session, Conversion) == 0
    assert (await session.scalar(select(OfferRedemption.redeemed_by))) is None
    assert "secret-value" not in caplog.text
    assert "unhandled" not in caplog.text


async def test_a_graphql_datetime_outside_postgresqls_range_is_a_user_error(
    client, session, api_key, caplog
):
    advocate = await make_advocate(session, email="ada@example.org")
    await session.commit()
    from vouch.api.ids import encode_id

    mutation = """mutation($input: [SignalInput!]!) {
      recordSignals(signals: $input) { errors { message field code } }
    }"""
    for when in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        with caplog.at_level(logging.WARNING):
            response = await client.post(
                "/graphql",
                json={
                    "query": mutation,
                    "variables": {
                        "input": [
                            {
                                "advocateId": encode_id("Advocate", advocate.id),
                                "kind": "NPS",
                                "value": 9,
                                "occurredAt": when,
                            }
                        ]
                    },
                },
                headers={"authorization": f"Bearer {api_key}"},
            )
        assert response.status_code in (200, 400), response.text
        body = response.json()
        assert "internal" not in response.text.lower()
        message = body["errors"][0]["message"]
        assert message == (
            "Variable '$input' has invalid value at [0].occurredAt: Value cannot represent a "
            f'DateTime: "{when}". It is outside the supported range (years 1 to 9999 UTC).'
        )
        assert "unhandled" not in caplog.text


async def test_database_errors_never_quote_the_statements_values(database_url):
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as raised:
                await conn.execute(
                    text("SELECT 1 / (length(:v) - length(:v))"), {"v": "person-secret-42"}
                )
    finally:
        await engine.dispose()
    assert "person-secret-42" not in str(raised.value)


async def test_the_trailing_slash_redirect_does_not_reflect_the_host_header(client, session, codec):
    world = await make_setup(session, codec)
    response = await client.get(f"/r/{world.code}/", headers={"host": "evil.example"})
    assert response.status_code in (307, 308)
    assert response.headers["location"] == f"/r/{world.code}"


async def test_production_refuses_hosts_it_does_not_serve(settings, sessionmaker, session, codec):
    world = await make_setup(session, codec)
    prod = settings.model_copy(
        update={
            "env": settings.env.PRODUCTION,
            "public_base_url": "https://refer.example.com",
            "allowed_hosts": ["www.refer.example.com"],
            "hashid_salt": "a-production-salt-of-at-least-32-characters",
        }
    )
    app = create_app(prod, Overrides(sessionmaker=sessionmaker))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://refer.example.com") as c:
        evil = await c.get(f"/r/{world.code}/", headers={"host": "evil.example"})
        assert evil.status_code == 400
        assert "location" not in evil.headers
        assert evil.text == "Unknown host.\n"
        assert (await c.get("/claim")).status_code == 200
        assert (await c.get("/claim", headers={"host": "www.refer.example.com"})).status_code == 200
        assert (await c.get("/claim", headers={"host": "evil.example"})).status_code == 400
        # Health probes come from the orchestrator, addressed by the pod's own IP.
        assert (await c.get("/healthz", headers={"host": "10.1.2.3:8000"})).status_code == 200
    assert await count(session, Referral) == 0
    assert await count(session, RateLimitHit) == 0


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }


@pytest.mark.parametrize(
    "body",
    [b"[" * 2000 + b"]" * 2000, b'{"type": "signal.recorded", "data": {"kind": "\\ud800"}}'],
)
async def test_hostile_json_in_a_signed_inbound_webhook_is_422(client, session, body):
    from tests.web.test_inbound_webhooks import post

    response = await post(client, None, msg_id="msg_hostile", body=body)
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "INVALID",
        "message": "body is not JSON",
        "field": "body",
    }


def test_the_edge_reads_the_first_of_each_header_it_checks_as_starlette_would() -> None:
    from starlette.datastructures import Headers

    from vouch.web.edge import _edge_headers

    raw = [
        (b"host", b"Example.com:8000"),
        (b"content-length", b"12"),
        (b"content-length", b"99999999"),  # a second value (smuggling) is not the one read
        (b"x-other", b"1"),
        (b"content-type", b"application/json"),
        (b"transfer-encoding", b"chunked"),
        (b"host", b"evil.example"),
    ]
    headers = Headers(raw=raw)
    assert _edge_headers(raw) == (
        headers.get("host"),
        headers.get("content-length"),
        headers.get("transfer-encoding"),
        headers.get("content-type"),
    )
    assert _edge_headers([]) == ("", None, "", "")
