"""A tiny helper to post GraphQL documents in tests."""

from __future__ import annotations

from typing import Any

import httpx


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    expect_errors: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    headers = {**({"authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    if not expect_errors:
        assert "errors" not in body, body
    return body
