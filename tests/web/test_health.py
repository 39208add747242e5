from __future__ import annotations


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]


async def test_readyz_reports_database_and_migrations(client):
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "migrations": "head"}


async def test_metrics_for_loopback_only(client, app):
    await client.get("/healthz")
    # httpx's ASGI transport reports the client as 127.0.0.1.
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'vouch_http_requests_total{route="/healthz",status="200"}' in response.text


async def test_metrics_label_requests_by_route_so_a_scanner_cannot_add_series(client):
    """Request metrics are labelled by the route that matched (its template), never by the
    path an outsider sent: a scan of random paths must not grow the metrics without bound."""
    for i in range(30):
        await client.get(f"/scan{i}")
        await client.get(f"/api/probe{i}")
    await client.get("/healthz")
    text = (await client.get("/metrics")).text
    routes = {
        line.split('route="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("vouch_http_requests_total{")
    }
    assert not any("scan" in r or "probe" in r for r in routes), routes
    assert "/healthz" in routes
    assert "unmatched" in routes


async def test_metrics_refused_from_elsewhere(app):
    import httpx

    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.get("/metrics")
    assert response.status_code == 403


def test_json_log_lines_carry_the_request_id():
    import json
    import logging

    from vouch.core.logging import JsonFormatter, request_id_var

    token = request_id_var.set("abc123")
    try:
        record = logging.LogRecord(
            "vouch", logging.INFO, __file__, 1, "claimed %s", ("ref-1",), None
        )
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "abc123"
    assert line["msg"] == "claimed ref-1"
    assert line["level"] == "info"


def test_log_lines_mask_people_even_in_tracebacks():
    import json
    import logging

    from vouch.core.logging import JsonFormatter

    try:
        raise ValueError("Key (person_key)=(ada.lovelace+x@example.com) from 203.0.113.7 exists")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "vouch",
            logging.ERROR,
            __file__,
            1,
            "claim by %s with vk_ab12cd34_SECRETsecret",
            ("grace@example.org",),
            sys.exc_info(),
        )
    line = JsonFormatter().format(record)
    assert "example.com" not in line
    assert "grace@example.org" not in line
    assert "203.0.113.7" not in line
    assert "SECRETsecret" not in line
    assert json.loads(line)["msg"] == "claim by <email> with <api-key>"


def test_request_ids_are_unique_within_and_across_forked_workers():
    import os

    from vouch.web.middleware import _new_request_id

    ids = {_new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked worker: its own prefix
        os.write(write, _new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child[:8] != _new_request_id()[:8]
