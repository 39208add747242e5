"""Answers for failures that are not the caller's fault: the database being away is a 503 with
``Retry-After`` (fail fast, never hang), anything unexpected a 500 with a request id."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from vouch.core.engine import is_database_unavailable

logger = logging.getLogger("vouch.web")
RETRY_AFTER_SECONDS = "5"


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(
        ("/graphql", "/api/", "/webhooks/", "/reports/", "/integrations/")
    )


async def unavailable(request: Request, exc: Exception) -> Response:
    headers = {"retry-after": RETRY_AFTER_SECONDS, "cache-control": "no-store"}
    logger.warning("database unavailable: %s", type(exc).__name__)
    if _wants_json(request):
        return JSONResponse(
            {"error": "service_unavailable", "message": "database unavailable, retry shortly"},
            status_code=503,
            headers=headers,
        )
    return PlainTextResponse(
        "Vouch is briefly unavailable. Please try again in a few seconds.\n",
        status_code=503,
        headers=headers,
    )


async def disconnected(request: Request, exc: Exception) -> Response:
    """The client went away: nobody reads this answer, and it is not our error."""
    logger.debug("client disconnected")
    return Response(status_code=400)


async def unexpected(request: Request, exc: Exception) -> Response:
    if is_database_unavailable(exc):
        return await unavailable(request, exc)
    if isinstance(exc, HTTPException):
        raise exc
    request_id = request.scope.get("state", {}).get("request_id", "-")
    logger.exception("unhandled error", extra={"path": request.url.path})
    body = f"Something went wrong on our side (request id {request_id}).\n"
    if _wants_json(request):
        return JSONResponse({"error": "internal_error", "request_id": request_id}, status_code=500)
    return PlainTextResponse(body, status_code=500)


# Handlers for specific classes run inside ExceptionMiddleware and end the request cleanly;
# only truly unknown exceptions reach the catch-all (which Starlette re-raises after answering).
EXCEPTION_HANDLERS = {
    ClientDisconnect: disconnected,
    OperationalError: unavailable,
    PoolTimeoutError: unavailable,
    DBAPIError: unexpected,
    OSError: unexpected,
    TimeoutError: unexpected,
    Exception: unexpected,
}
