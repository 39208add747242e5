"""Liveness and readiness probes."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse

from vouch.core.migrations import head_revisions


async def healthz(request: Request) -> JSONResponse:
    """The process is alive; says nothing about dependencies."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is at the migrations' head."""
    sessions = request.app.state.sessions
    session = sessions.get(request.scope.setdefault("state", {}))
    try:
        rows = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalars()
        current = set(rows)
    except (SQLAlchemyError, OSError) as exc:
        return JSONResponse(
            {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"},
            status_code=503,
            headers={"retry-after": "5"},
        )
    heads = head_revisions()
    if current != heads:
        return JSONResponse(
            {"status": "unavailable", "database": "ok", "migrations": "behind; run vouch migrate"},
            status_code=503,
        )
    body: dict[str, object] = {"status": "ok", "database": "ok", "migrations": "head"}
    monitor = getattr(request.app.state, "replica_monitor", None)
    if monitor is not None:
        # Detail only: a replica that is down or behind sends reports to the primary, so it
        # never makes this instance unready.
        body["replica"] = monitor.detail()
    return JSONResponse(body)
