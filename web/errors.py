"""Answers for failures that are not the caller's fault: the database being away is a 503 with
``Retry-After`` (fail fast, never hang), anything unexpected a 500 with a request id."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

logger = logging.getLogger("vouch.web")
RETRY_AFTER_SECONDS = "5"


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached right now"."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, (ConnectionError, OSError, TimeoutError)):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_database_unavailable(cause)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/graphql", "/api/", "/webhooks/", "/reports/"))


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


EXCEPTION_HANDLERS = {
    OperationalError: unavailable,
    PoolTimeoutError: unavailable,
    Exception: unexpected,
}
