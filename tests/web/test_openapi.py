"""The OpenAPI document: served at /openapi.json, committed as docs/openapi.json, valid
OpenAPI 3.1, and one entry per REST endpoint the app routes."""

from __future__ import annotations

import json

from openapi_spec_validator import validate
from starlette.routing import Route

from tests.faults.harness import ROOT
from vouch.web.rest.openapi import OPERATIONS, document_text


async def test_served_committed_and_valid(client):
    served = await client.get("/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == document_text(), "run: python -m vouch.web.rest.openapi"
    assert served.json() == json.loads(committed)
    validate(served.json())  # raises on an invalid OpenAPI 3.1 document
    assert served.json()["openapi"] == "3.1.0"


def test_every_json_endpoint_is_described(app):
    described = {(op.path, op.method.upper()) for op in OPERATIONS}
    routed = {
        (route.path, method)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if route.path.startswith(("/api/", "/webhooks/", "/integrations/", "/share/events"))
    }
    assert routed == described


def test_every_field_is_described():
    document = json.loads(document_text())
    for name, schema in document["components"]["schemas"].items():
        for prop, spec in schema.get("properties", {}).items():
            if "$ref" in spec or spec.get("allOf"):
                continue
            assert spec.get("description"), f"{name}.{prop} has no description"
