"""The native integrations' HTTP edge (request and response shapes are in each domain module's
docstring and in docs/guides/):

* ``POST /integrations/hubspot/webhook`` — ``attribution.integrations.hubspot``
* ``POST /integrations/salesforce/outbound?token=…`` — ``attribution.integrations.salesforce``
* ``POST /integrations/stripe/webhook`` — ``attribution.integrations.stripe_billing``

Each handler verifies, then applies each provider event in one transaction. An event refused
for its content is rolled back, recorded as ``failed`` with the reason in a transaction of its
own, and acknowledged (the provider would only retry the same content); a signature or
authentication failure writes nothing and is answered 401. An integration whose secret is not
configured answers 404.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vouch.api.ids import decode_id, encode_id
from vouch.attribution.inbound import MAX_BODY_BYTES
from vouch.attribution.integrations import events, hubspot, salesforce, stripe_billing
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError, ErrorCode
from vouch.core.settings import Settings

logger = logging.getLogger("vouch.integrations")

_AUTH_STATUS = {ErrorCode.FORBIDDEN: 401, ErrorCode.EXPIRED: 401}


class ProviderUnavailable(Exception):
    """The provider's API could not answer now; the provider should retry the delivery."""


def _error(exc: DomainError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code.value, "message": exc.message, "field": exc.field}},
        status_code=_AUTH_STATUS.get(exc.code, 422),
    )


def _not_configured(name: str, setting: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "code": "NOT_FOUND",
                "message": f"the {name} integration is not configured ({setting})",
                "field": None,
            }
        },
        status_code=404,
    )


def _too_large() -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "INVALID", "message": "payload is too large", "field": "body"}},
        status_code=413,
    )


def describe(exc: DomainError) -> str:
    """A refusal's reason for the event log: code, field and message (never personal data)."""
    return f"{exc.code.value} {exc.field or '-'}: {exc.message}"[:500]


def _referral_id(value: int | None) -> str | None:
    return encode_id("Referral", value) if value is not None else None


class Integrations:
    def __init__(self, settings: Settings, sessions: Any) -> None:
        self.settings = settings
        self.sessions = sessions
        self.decode_referral = partial(decode_id, type_name="Referral", field="referralId")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/integrations/hubspot/webhook", self.hubspot_webhook, methods=["POST"]),
            Route("/integrations/stripe/webhook", self.stripe_webhook, methods=["POST"]),
            Route("/integrations/salesforce/outbound", self.salesforce_outbound, methods=["POST"]),
        ]

    async def _body(self, request: Request) -> bytes | None:
        body = await request.body()
        return None if len(body) > MAX_BODY_BYTES else body

    # --- HubSpot --------------------------------------------------------------------------

    def _hubspot_uri(self, request: Request) -> str:
        """The URI HubSpot called, as it signed it."""
        if self.settings.hubspot_webhook_url:
            return self.settings.hubspot_webhook_url
        uri = self.settings.public_base_url.rstrip("/") + request.url.path
        query = request.url.query
        return f"{uri}?{query}" if query else uri

    async def hubspot_webhook(self, request: Request) -> Response:
        secret = self.settings.hubspot_client_secret
        if not secret:
            return _not_configured("HubSpot", "VOUCH_HUBSPOT_CLIENT_SECRET")
        body = await self._body(request)
        if body is None:
            return _too_large()
        try:
            hubspot.verify(
                client_secret=secret,
                method=request.method,
                uri=self._hubspot_uri(request),
                body=body,
                signature=request.headers.get("x-hubspot-signature-v3"),
                timestamp=request.headers.get("x-hubspot-request-timestamp"),
                now=utcnow(),
            )
            batch = hubspot.parse_events(body)
        except DomainError as exc:
            return _error(exc)
        session = self.sessions.get(request.scope.setdefault("state", {}))
        counts = {"queued": 0, "ignored": 0, "replayed": 0}
        for event in batch:  # one transaction per event
            counts[await hubspot.receive(session, event, now=utcnow())] += 1
            await session.commit()
        return JSONResponse({"received": len(batch), **counts})

    # --- Salesforce -----------------------------------------------------------------------

    async def salesforce_outbound(self, request: Request) -> Response:
        token = self.settings.salesforce_outbound_token
        if not token or not self.settings.salesforce_org_ids:
            return _not_configured(
                "Salesforce", "VOUCH_SALESFORCE_OUTBOUND_TOKEN and VOUCH_SALESFORCE_ORG_IDS"
            )
        body = await self._body(request)
        if body is None:
            return _too_large()
        try:
            salesforce.check_token(request.query_params.get("token"), expected=token)
            message = salesforce.parse(body)
            salesforce.check_organization(
                message.organization_id, allowed=self.settings.salesforce_org_ids
            )
        except DomainError as exc:
            return _error(exc)
        session = self.sessions.get(request.scope.setdefault("state", {}))
        for notification in message.notifications:
            now = utcnow()
            try:
                await salesforce.apply(
                    session,
                    notification,
                    organization_id=message.organization_id,
                    now=now,
                    decode_referral=self.decode_referral,
                )
            except DomainError as exc:
                await session.rollback()
                detail = describe(exc)
                await events.record_failure(
                    session,
                    provider=salesforce.PROVIDER,
                    event_id=notification.id,
                    event_type=f"outbound.{notification.object_type or 'unknown'}",
                    object_id=notification.fields.get("Id"),
                    detail=detail,
                    now=now,
                )
                logger.info("salesforce notification %s failed: %s", notification.id, detail)
            await session.commit()
        return Response(salesforce.ACK, media_type="text/xml; charset=utf-8")

    # --- Stripe ---------------------------------------------------------------------------

    def _stripe_lookup(self) -> stripe_billing.PromotionLookup | None:
        if not self.settings.stripe_api_key:
            return None
        import stripe  # imported when used (see stripe_billing.verify)

        client = stripe.StripeClient(
            self.settings.stripe_api_key,
            base_addresses={"api": self.settings.stripe_api_base},
            http_client=stripe.HTTPXClient(timeout=5),
            max_network_retries=2,
        )

        async def lookup(promo_id: str) -> str | None:
            try:
                promo = await client.v1.promotion_codes.retrieve_async(promo_id)
            except stripe.InvalidRequestError:
                return None  # not a promotion code Stripe knows
            except stripe.StripeError as exc:
                raise ProviderUnavailable(type(exc).__name__) from None
            code = getattr(promo, "code", None)
            return code if isinstance(code, str) else None

        return lookup

    async def stripe_webhook(self, request: Request) -> Response:
        secret = self.settings.stripe_webhook_secret
        if not secret:
            return _not_configured("Stripe", "VOUCH_STRIPE_WEBHOOK_SECRET")
        body = await self._body(request)
        if body is None:
            return _too_large()
        try:
            event = stripe_billing.verify(
                body,
                request.headers.get("stripe-signature"),
                secret=secret,
                tolerance=self.settings.webhook_tolerance_seconds,
            )
        except DomainError as exc:
            return _error(exc)
        session = self.sessions.get(request.scope.setdefault("state", {}))
        now = utcnow()
        try:
            result = await stripe_billing.handle(
                session,
                event,
                now=now,
                decode_referral=self.decode_referral,
                lookup_promotion_code=self._stripe_lookup(),
            )
        except ProviderUnavailable as exc:
            await session.rollback()
            logger.warning("stripe event %s deferred: %s", event["id"], exc)
            return JSONResponse(
                {"error": {"code": "UNAVAILABLE", "message": "Stripe's API did not answer"}},
                status_code=503,
                headers={"retry-after": "60"},
            )
        except DomainError as exc:
            await session.rollback()
            detail = describe(exc)
            await events.record_failure(
                session,
                provider=stripe_billing.PROVIDER,
                event_id=event["id"],
                event_type=event["type"],
                object_id=str(event["data"]["object"].get("id") or "")[:64] or None,
                detail=detail,
                now=now,
            )
            await session.commit()
            logger.info("stripe event %s failed: %s", event["id"], detail)
            return JSONResponse(
                {
                    "status": "failed",
                    "event_id": event["id"],
                    "type": event["type"],
                    "replayed": False,
                    "referral_id": None,
                    "detail": detail,
                }
            )
        await session.commit()
        return JSONResponse(
            {
                "status": result.status,
                "event_id": result.event_id,
                "type": result.event_type,
                "replayed": result.replayed,
                "referral_id": _referral_id(result.referral_id),
                "detail": result.detail,
            }
        )
