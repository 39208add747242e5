"""``POST /webhooks/inbound``: signed CRM and billing events (see ``attribution.inbound``)."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse

from vouch.advocacy.signals import ingest_signal_event
from vouch.api.ids import decode_id, encode_id
from vouch.attribution import inbound
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError, ErrorCode
from vouch.web.metrics import INBOUND_REFUSALS

_STATUS = {
    ErrorCode.FORBIDDEN: 401,
    ErrorCode.EXPIRED: 401,
    ErrorCode.CONFLICT: 409,
    ErrorCode.IDEMPOTENCY_MISMATCH: 409,
    ErrorCode.NOT_FOUND: 422,
    ErrorCode.INVALID: 422,
    ErrorCode.INVALID_TRANSITION: 409,
}


async def _signal(
    session: AsyncSession, data: dict[str, Any], provider: str, now: datetime
) -> dict[str, Any]:
    recorded = await ingest_signal_event(session, data, source=provider, now=now)
    return {"signal_id": encode_id("Signal", recorded.signal.id), "created": recorded.created}


async def inbound_webhook(request: Request) -> JSONResponse:
    """Verify, deduplicate and apply one event in one transaction; errors write nothing."""
    settings = request.app.state.settings
    secret: str | None = request.app.state.inbound_secret
    if secret is None:  # production without VOUCH_INBOUND_WEBHOOK_SECRET (logged at start-up)
        return JSONResponse(
            {
                "error": {
                    "code": "DISABLED",
                    "message": "inbound webhooks are disabled on this server",
                    "field": None,
                }
            },
            status_code=503,
        )
    body = await request.body()
    session = request.app.state.sessions.get(request.scope.setdefault("state", {}))
    try:
        result = await inbound.handle(
            session,
            secret=secret,
            headers=request.headers,
            body=body,
            tolerance_seconds=settings.webhook_tolerance_seconds,
            now=utcnow(),
            decode_referral=partial(decode_id, type_name="Referral", field="referralId"),
            extra={"signal.recorded": _signal},
        )
    except DomainError as exc:
        await session.rollback()
        INBOUND_REFUSALS.labels(exc.code.value).inc()
        return JSONResponse(
            {"error": {"code": exc.code.value, "message": exc.message, "field": exc.field}},
            status_code=_STATUS.get(exc.code, 422),
        )
    await session.commit()
    return JSONResponse(result.response | {"replayed": result.replayed}, status_code=200)
