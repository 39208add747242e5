"""Server-to-server HTTP endpoints for the customer's product: redeem an offer code exactly
once (``POST /api/redemptions``) and report conversions (``POST /api/conversions``).

Both take ``Authorization: Bearer <API key with write scope>`` and an ``Idempotency-Key``
header; a retry with the same key and body gets the first answer back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vouch.access.api_keys import authenticate
from vouch.attribution.redemptions import (
    record_conversion_once,
    redeem_offer_once,
    validate_conversion,
    validate_redeem,
)
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError, ErrorCode
from vouch.core.jsonbody import InvalidJson, loads_untrusted
from vouch.core.security import bearer
from vouch.core.sessions import RequestSessions
from vouch.models import OfferRedemption
from vouch.models.enums import Scope
from vouch.models.snapshots import ConversionSnapshot

MAX_BODY = 8192
_STATUS = {
    ErrorCode.INVALID: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ALREADY_REDEEMED: 409,
    ErrorCode.EXPIRED: 410,
    ErrorCode.CONFLICT: 409,
    ErrorCode.IDEMPOTENCY_MISMATCH: 422,
}
_WRITE_SCOPES = {Scope.WRITE.value, Scope.ADMIN.value}


def redemption_json(r: OfferRedemption) -> dict[str, Any]:
    return {
        "code": r.code,
        "issuedAt": r.issued_at.isoformat(),
        "expiresAt": r.expires_at.isoformat() if r.expires_at else None,
        "redeemedAt": r.redeemed_at.isoformat() if r.redeemed_at else None,
        "redeemedBy": r.redeemed_by,
        "orderRef": r.order_ref,
    }


def conversion_json(c: ConversionSnapshot) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "externalRef": c.external_ref,
        "amountMinor": c.amount_minor,
        "currency": c.currency,
        "occurredAt": c.occurred_at.isoformat(),
    }


def _error(code: str, message: str, status: int, field: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "field": field}},
        status_code=status,
        headers={"cache-control": "no-store"},
    )


class RedemptionApi:
    def __init__(self, sessions: RequestSessions) -> None:
        self.sessions = sessions

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/redemptions", self.redeem, methods=["POST"]),
            Route("/api/conversions", self.convert, methods=["POST"]),
        ]

    async def _begin(
        self, request: Request
    ) -> tuple[AsyncSession, dict[str, Any], str, str] | JSONResponse:
        """Authenticate, read the idempotency key and the JSON body; or the error answer."""
        session = self.sessions.get(request.scope.setdefault("state", {}))
        token = bearer(request.headers.get("authorization")).token
        key = await authenticate(session, token) if token else None
        if key is None:
            return _error("UNAUTHENTICATED", "send 'Authorization: Bearer <api key>'", 401)
        await session.commit()  # persist last_used_at; ends the auth transaction
        if not set(key.scopes) & _WRITE_SCOPES:
            return _error("FORBIDDEN", "this API key lacks the 'write' scope", 403)
        idem = request.headers.get("idempotency-key", "").strip()
        if not idem or len(idem) > 255:
            return _error(
                "INVALID",
                "send an Idempotency-Key header (1 to 255 characters)",
                400,
                "Idempotency-Key",
            )
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _error("INVALID", "send a JSON body", 415)
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error("INVALID", "request body too large", 413)
        try:
            data = loads_untrusted(body)
        except InvalidJson:
            return _error("INVALID", "the body is not valid JSON", 400)
        if not isinstance(data, dict):
            return _error("INVALID", "the body must be a JSON object", 400)
        # Keys are scoped to the API key that sent them, as in GraphQL.
        return session, data, idem, f"api_key:{key.id}"

    async def redeem(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, JSONResponse):
            return begun
        session, data, idem, owner = begun
        try:
            req = validate_redeem(
                _string(data, "code"), _string(data, "redeemedBy"), _opt_string(data, "orderRef")
            )
            redemption = await redeem_offer_once(
                session, req, idempotency_key=idem, now=utcnow(), idempotency_owner=owner
            )
        except DomainError as exc:
            await session.rollback()
            return _error(exc.code, exc.message, _STATUS.get(exc.code, 422), exc.field)
        await session.commit()
        return JSONResponse({"redemption": redemption_json(redemption)})

    async def convert(self, request: Request) -> Response:
        begun = await self._begin(request)
        if isinstance(begun, JSONResponse):
            return begun
        session, data, idem, owner = begun
        now = utcnow()
        try:
            amount = data.get("amountMinor", 0)
            if not isinstance(amount, int) or isinstance(amount, bool):
                raise DomainError("amountMinor must be an integer", field="amountMinor")
            req = validate_conversion(
                redemption_code=_string(data, "redemptionCode"),
                kind=_string(data, "kind"),
                external_ref=_opt_string(data, "externalRef"),
                amount_minor=amount,
                currency=_opt_string(data, "currency"),
                occurred_at=_timestamp(data, "occurredAt"),
                now=now,
            )
            conversion, _ = await record_conversion_once(
                session, req, idempotency_key=idem, idempotency_owner=owner
            )
        except DomainError as exc:
            await session.rollback()
            return _error(exc.code, exc.message, _STATUS.get(exc.code, 422), exc.field)
        await session.commit()
        return JSONResponse({"conversion": conversion_json(conversion)})


def _string(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise DomainError(f"{name} is required and must be a string", field=name)
    return value


def _opt_string(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DomainError(f"{name} must be a string", field=name)
    return value


def _timestamp(data: dict[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise DomainError(f"{name} must be an ISO-8601 timestamp", field=name)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DomainError(f"{name} must be an ISO-8601 timestamp", field=name) from None
    if parsed.tzinfo is None:
        raise DomainError(f"{name} must carry a timezone", field=name)
    return parsed
