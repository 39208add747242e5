"""The REST surface described: an OpenAPI 3.1 document of Vouch's JSON endpoints, served at
``/openapi.json`` and committed as ``docs/openapi.json`` (a test fails when they drift; rewrite
it with ``python -m vouch.web.rest.openapi``).

Adding an endpoint is one ``Operation`` in ``OPERATIONS``: its path, method, credentials, the
pydantic models of its body and answers, and the statuses it gives. Bodies are described with
pydantic (JSON Schema 2020-12, which OpenAPI 3.1 uses as it is); the handlers keep their own
parsing, and schemathesis checks in the test suite that they answer as described.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from vouch.attribution.share_events import SHARE_CHANNELS
from vouch.models.enums import ConversionKind, ShareEventKind

OPENAPI_VERSION = "3.1.0"
DOCUMENT_PATH = Path("docs") / "openapi.json"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


# --- shared answers ---------------------------------------------------------------------------


class ErrorDetail(_Model):
    code: str = Field(description="A `UserErrorCode`-like code, e.g. INVALID, NOT_FOUND.")
    message: str = Field(description="What went wrong, in words.")
    field: str | None = Field(description="The body field, header or parameter at fault.")


class ErrorBody(_Model):
    """The answer to a request that changed nothing."""

    error: ErrorDetail


# --- /api/redemptions and /api/conversions --------------------------------------------------


class RedeemRequest(_Model):
    """Redeem a referred friend's offer code once."""

    code: str = Field(description="The redemption code shown to the friend.")
    redeemedBy: str = Field(description="Who redeems it: your account or customer id.")  # noqa: N815
    orderRef: str | None = Field(None, description="Your order reference.")  # noqa: N815


class Redemption(_Model):
    code: str = Field(description="The code.")
    issuedAt: datetime = Field(description="When it was issued (UTC).")  # noqa: N815
    expiresAt: datetime | None = Field(description="When it stops working (UTC).")  # noqa: N815
    redeemedAt: datetime | None = Field(description="When it was redeemed (UTC).")  # noqa: N815
    redeemedBy: str | None = Field(description="Who redeemed it.")  # noqa: N815
    orderRef: str | None = Field(description="The order reference given.")  # noqa: N815


class RedeemAnswer(_Model):
    redemption: Redemption


ConversionKindName = StrEnum("ConversionKindName", {k.name: k.value for k in ConversionKind})  # type: ignore[misc]


class ConversionRequest(_Model):
    """Report a signup or purchase made with a redemption code."""

    redemptionCode: str = Field(description="The friend's redemption code.")  # noqa: N815
    kind: ConversionKindName = Field(description="signup or purchase.")  # type: ignore[valid-type]
    externalRef: str | None = Field(None, description="Your id for the conversion.")  # noqa: N815
    amountMinor: int = Field(  # noqa: N815
        0, description="Purchase amount in integer minor units; 0 for a signup."
    )
    currency: str | None = Field(None, description="ISO-4217 code; USD when omitted.")
    occurredAt: datetime | None = Field(  # noqa: N815
        None, description="When it happened, with a timezone; now when omitted."
    )


class ConversionOut(_Model):
    kind: str = Field(description="signup or purchase.")
    externalRef: str | None = Field(description="Your id for the conversion.")  # noqa: N815
    amountMinor: int = Field(description="Amount in integer minor units.")  # noqa: N815
    currency: str = Field(description="ISO-4217 code.")
    occurredAt: datetime = Field(description="When it happened (UTC).")  # noqa: N815


class ConversionAnswer(_Model):
    conversion: ConversionOut


# --- /share/events ------------------------------------------------------------------------------

ShareKind = StrEnum("ShareKind", {k.name: k.value for k in ShareEventKind})  # type: ignore[misc]
ShareChannel = StrEnum("ShareChannel", {c.upper(): c for c in SHARE_CHANNELS})  # type: ignore[misc]


class ShareEventRequest(_Model):
    """What the advocate did on the share page."""

    token: str = Field(description="The advocate's widget token (from the share page URL).")
    kind: ShareKind = Field(description="The event.")  # type: ignore[valid-type]
    channel: ShareChannel | None = Field(  # type: ignore[valid-type]
        None, description="For channel_chosen and message_edited only."
    )
    program: str | None = Field(None, description="Program slug; the advocate's first link's.")


class ShareEventAnswer(_Model):
    ok: Literal[True] = Field(description="Recorded.")


class ShareError(_Model):
    error: str = Field(description="What went wrong.")
    field: str | None = Field(description="The body field at fault.")


# --- /webhooks/inbound --------------------------------------------------------------------------


class InboundMessage(_Model):
    """A signed CRM or billing event; see docs/guides/crm.md for each type's `data`."""

    type: Literal["opportunity.upsert", "revenue.recorded", "signal.recorded"] = Field(
        description="The event type."
    )
    provider: str | None = Field(
        None, description="hubspot, salesforce, vouch (opportunity.upsert) or the sender's name."
    )
    data: dict[str, Any] = Field(description="The event's object.")


class InboundAnswer(_Model):
    status: Literal["processed"] = Field(description="The event was applied.")
    type: str = Field(description="The event type.")
    replayed: bool = Field(description="This message id was seen before: the first answer.")
    created: bool | None = Field(None, description="A new record was created.")
    changed: bool | None = Field(None, description="An existing opportunity changed.")
    opportunity_id: str | None = Field(None, description="Opaque opportunity id.")
    revenue_event_id: str | None = Field(None, description="Opaque revenue event id.")
    signal_id: str | None = Field(None, description="Opaque signal id.")


# --- the native receivers: HubSpot, Salesforce, Stripe -----------------------------------------


class HubSpotEvent(_Model):
    """One event of a HubSpot webhook batch, as HubSpot sends it (other fields are ignored)."""

    eventId: int = Field(  # noqa: N815
        description="HubSpot's id of the event: a redelivery is not applied again."
    )
    subscriptionType: str = Field(  # noqa: N815
        description="deal.creation, deal.propertyChange, deal.deletion, deal.associationChange, …"
    )
    objectId: int | None = Field(None, description="The deal's id.")  # noqa: N815
    propertyName: str | None = Field(None, description="For deal.propertyChange.")  # noqa: N815
    propertyValue: str | None = Field(None, description="For deal.propertyChange.")  # noqa: N815
    occurredAt: int | None = Field(None, description="Unix milliseconds.")  # noqa: N815
    portalId: int | None = Field(None, description="The HubSpot account.")  # noqa: N815
    appId: int | None = Field(None, description="The HubSpot app.")  # noqa: N815
    attemptNumber: int | None = Field(None, description="HubSpot's delivery attempt, from 0.")  # noqa: N815


class HubSpotBatch(RootModel[list[HubSpotEvent]]):
    """HubSpot's JSON array of events (up to 100 per request)."""


class HubSpotAnswer(_Model):
    received: int = Field(description="Events in the batch.")
    queued: int = Field(
        description="Events queued: the deal is fetched from HubSpot off the request."
    )
    ignored: int = Field(description="Events of types Vouch does not act on.")
    replayed: int = Field(description="Events whose eventId was seen before.")


class StripeEventData(_Model):
    object: dict[str, Any] = Field(
        description="The invoice, charge, checkout session or subscription."
    )


class StripeEvent(_Model):
    """A Stripe event object (invoice.paid, charge.refunded, checkout.session.completed and
    customer.subscription.deleted are acted on; others are acknowledged and ignored)."""

    id: str = Field(
        description="Stripe's event id (evt_…): a redelivery is not applied again.",
        pattern="^[A-Za-z0-9_]{1,255}$",
    )
    object: Literal["event"] = Field(description="Always event.")
    type: str = Field(
        description="The event type, e.g. invoice.paid.", pattern="^[a-z0-9_.]{1,100}$"
    )
    created: int = Field(description="Unix seconds.")
    data: StripeEventData = Field(description="What the event is about.")


class StripeAnswer(_Model):
    status: str = Field(description="applied, ignored, unmatched or failed (see the guide).")
    event_id: str = Field(description="Stripe's event id.")
    type: str = Field(description="The event type.")
    replayed: bool = Field(description="This event id was seen before: nothing was done again.")
    referral_id: str | None = Field(description="Opaque id of the referral it moved, if any.")
    detail: str | None = Field(description="Why it was ignored, unmatched or failed.")


class UnavailableBody(_Model):
    error: dict[str, str] = Field(description="code UNAVAILABLE: the provider should retry.")


@dataclass(frozen=True, slots=True)
class Raw:
    """A body that is not JSON: its media type and what it holds."""

    media_type: str
    description: str


SOAP_NOTIFICATIONS = Raw(
    "text/xml",
    "A Salesforce Outbound Message: a SOAP envelope whose `notifications` hold an "
    "`OrganizationId` and one `Notification` per changed Opportunity (`sObject` with Id, "
    "StageName, Amount, CloseDate, IsWon, IsClosed, CurrencyIsoCode and Vouch_Referral_Id__c or "
    "the primary contact's email). Parsed with defusedxml; DTDs and entities are refused.",
)
SOAP_ACK = Raw(
    "text/xml",
    "`<notificationsResponse><Ack>true</Ack></notificationsResponse>` in a SOAP envelope: "
    "Salesforce stops retrying these notifications.",
)


# --- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    description: str
    required: bool = True
    max_length: int | None = None
    where: Literal["header", "query"] = "header"


IDEMPOTENCY_KEY = Header(
    "Idempotency-Key",
    "A retry with the same key and body gets the first answer; another body is refused.",
    max_length=255,
)
SIGNATURE_HEADERS = (
    Header("webhook-id", "Unique per message; a replay returns the first answer."),
    Header("webhook-timestamp", "Unix seconds; outside VOUCH_WEBHOOK_TOLERANCE is refused."),
    Header("webhook-signature", 'v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">'),
)


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: everything the document says about it."""

    path: str
    method: str
    operation_id: str
    summary: str
    description: str
    body: type[BaseModel] | Raw
    # status -> (description, answer model or raw body)
    responses: Mapping[int, tuple[str, type[BaseModel] | Raw]]
    security: Sequence[str] = ()
    headers: Sequence[Header] = ()
    tags: Sequence[str] = field(default_factory=tuple)


_API_ERRORS: dict[int, tuple[str, type[BaseModel] | Raw]] = {
    400: ("No or bad Idempotency-Key, or a body that is not a JSON object.", ErrorBody),
    401: ("No valid API key.", ErrorBody),
    403: ("The API key lacks the write scope.", ErrorBody),
    413: ("The body is larger than 8 KB.", ErrorBody),
    415: ("The body is not application/json.", ErrorBody),
    422: ("Invalid field, or the Idempotency-Key was used with another body.", ErrorBody),
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        path="/api/redemptions",
        method="post",
        operation_id="redeemOffer",
        summary="Redeem an offer code exactly once",
        description="Server to server, from your checkout. A code redeems once; the "
        "referral's reward rules run on it.",
        body=RedeemRequest,
        responses={
            200: ("Redeemed now, or the first answer to this Idempotency-Key.", RedeemAnswer),
            **_API_ERRORS,
            404: ("No such code.", ErrorBody),
            409: ("Already redeemed.", ErrorBody),
            410: ("The code has expired.", ErrorBody),
        },
        security=("apiKey",),
        headers=(IDEMPOTENCY_KEY,),
        tags=("product",),
    ),
    Operation(
        path="/api/conversions",
        method="post",
        operation_id="recordConversion",
        summary="Report a signup or purchase",
        description="Moves the friend's referral along (signup: qualified, purchase: won).",
        body=ConversionRequest,
        responses={
            200: ("Recorded, or the first answer to this Idempotency-Key.", ConversionAnswer),
            **_API_ERRORS,
            404: ("No such redemption code.", ErrorBody),
            409: ("Conflicts with a conversion already recorded.", ErrorBody),
        },
        security=("apiKey",),
        headers=(IDEMPOTENCY_KEY,),
        tags=("product",),
    ),
    Operation(
        path="/share/events",
        method="post",
        operation_id="recordShareEvent",
        summary="Record what an advocate did on the share page",
        description="Sent by the share page's script; feeds the share-rate and outreach KPIs.",
        body=ShareEventRequest,
        responses={
            201: ("Recorded.", ShareEventAnswer),
            400: ("The body is not a JSON object.", ShareError),
            403: ("The token is invalid or expired.", ShareError),
            404: ("The advocate has no link in that program.", ShareError),
            413: ("The body is too large.", ShareError),
            415: ("The body is not application/json.", ShareError),
            422: ("Unknown kind or channel.", ShareError),
        },
        tags=("share page",),
    ),
    Operation(
        path="/webhooks/inbound",
        method="post",
        operation_id="inboundWebhook",
        summary="A signed event from a CRM or billing system",
        description="Standard Webhooks signature under VOUCH_INBOUND_WEBHOOK_SECRET; applied "
        "once per message id, in one transaction; errors write nothing.",
        body=InboundMessage,
        responses={
            200: ("Applied, or the first answer to this message id.", InboundAnswer),
            401: ("Missing or bad signature, or a timestamp outside the tolerance.", ErrorBody),
            409: ("The message id was used with another body, or a conflict.", ErrorBody),
            422: ("Invalid payload.", ErrorBody),
        },
        headers=SIGNATURE_HEADERS,
        tags=("integrations",),
    ),
    Operation(
        path="/integrations/hubspot/webhook",
        method="post",
        operation_id="hubspotWebhook",
        summary="A HubSpot app's webhook batch (deals)",
        description="Point the HubSpot app's webhook subscription here (docs/guides/hubspot.md). "
        "Verified with X-HubSpot-Signature-v3 under VOUCH_HUBSPOT_CLIENT_SECRET; each event is "
        "recorded once per eventId and the deal is fetched from HubSpot's CRM API off the "
        "request.",
        body=HubSpotBatch,
        responses={
            200: ("Received: counts of what happened to the batch's events.", HubSpotAnswer),
            401: ("Missing or bad signature, or a timestamp older than 5 minutes.", ErrorBody),
            404: ("The HubSpot integration is not configured.", ErrorBody),
            413: ("The body is too large.", ErrorBody),
            422: ("Not a JSON array of HubSpot events.", ErrorBody),
        },
        headers=(
            Header(
                "X-HubSpot-Signature-v3",
                "base64 HMAC-SHA256, keyed by the app's client secret, of method + URI + body + "
                "timestamp.",
            ),
            Header(
                "X-HubSpot-Request-Timestamp", "Unix milliseconds; older than 5 minutes is refused."
            ),
        ),
        tags=("integrations",),
    ),
    Operation(
        path="/integrations/salesforce/outbound",
        method="post",
        operation_id="salesforceOutboundMessage",
        summary="A Salesforce Outbound Message (Opportunity)",
        description="The endpoint URL of a Salesforce Outbound Message on Opportunity "
        "(docs/guides/salesforce.md). Outbound Messages cannot sign: the URL carries a secret "
        "token, and the organization id must be in VOUCH_SALESFORCE_ORG_IDS. Each notification "
        "is applied once.",
        body=SOAP_NOTIFICATIONS,
        responses={
            200: ("Acknowledged (failed notifications are in integrationEvents).", SOAP_ACK),
            401: ("Wrong token, or an organization not allowed.", ErrorBody),
            404: ("The Salesforce integration is not configured.", ErrorBody),
            413: ("The body is too large.", ErrorBody),
            422: ("Not an Outbound Message.", ErrorBody),
        },
        headers=(
            Header(
                "token",
                "VOUCH_SALESFORCE_OUTBOUND_TOKEN, in the endpoint URL configured in Salesforce.",
                where="query",
            ),
        ),
        tags=("integrations",),
    ),
    Operation(
        path="/integrations/stripe/webhook",
        method="post",
        operation_id="stripeWebhook",
        summary="A Stripe webhook event (billing)",
        description="A Stripe webhook endpoint (docs/guides/stripe.md), verified with Stripe's "
        "library under VOUCH_STRIPE_WEBHOOK_SECRET; each event id is applied once.",
        body=StripeEvent,
        responses={
            200: ("Applied, ignored, unmatched or failed (recorded), or a replay.", StripeAnswer),
            401: ("Missing or bad Stripe-Signature, or outside the tolerance.", ErrorBody),
            404: ("The Stripe integration is not configured.", ErrorBody),
            413: ("The body is too large.", ErrorBody),
            422: ("Not a Stripe event.", ErrorBody),
            503: ("Stripe's API did not answer; Stripe retries (Retry-After).", UnavailableBody),
        },
        headers=(
            Header("Stripe-Signature", "t=<unix seconds>,v1=<HMAC-SHA256>, as Stripe sends it."),
        ),
        tags=("integrations",),
    ),
)


def _header(h: Header) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if h.max_length is not None:
        schema["maxLength"] = h.max_length
    return {
        "name": h.name,
        "in": h.where,
        "required": h.required,
        "description": h.description,
        "schema": schema,
    }


def _content(model: type[BaseModel] | Raw) -> dict[str, Any]:
    if isinstance(model, Raw):
        return {model.media_type: {"schema": {"type": "string", "description": model.description}}}
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


def build_document(operations: Sequence[Operation] = OPERATIONS) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``."""
    models: list[type[BaseModel]] = []
    for op in operations:
        parts = [op.body, *(model for _, model in op.responses.values())]
        models += [m for m in parts if not isinstance(m, Raw)]
    unique = list(dict.fromkeys(models))
    _, definitions = models_json_schema(
        [(m, "validation") for m in unique], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, Any] = {}
    for op in operations:
        responses = {
            str(status): {"description": text, "content": _content(model)}
            for status, (text, model) in sorted(op.responses.items())
        }
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "description": op.description,
            "tags": list(op.tags),
            "parameters": [_header(h) for h in op.headers],
            "requestBody": {"required": True, "content": _content(op.body)},
            "responses": responses,
        }
        if op.security:
            entry["security"] = [{name: []} for name in op.security]
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Vouch REST endpoints",
            "version": "1",
            "description": "The JSON endpoints next to the GraphQL API (/graphql, described by "
            "api/schema.graphql). Ids are the opaque ids GraphQL uses.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`vouch apikey create --scope write`).",
                }
            },
        },
    }


def document_text() -> str:
    """The document as committed: sorted keys, two-space indent, a final newline."""
    return json.dumps(build_document(), indent=2, sort_keys=True) + "\n"


_DOCUMENT: bytes | None = None


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json``."""
    global _DOCUMENT
    if _DOCUMENT is None:
        _DOCUMENT = document_text().encode()
    return Response(_DOCUMENT, media_type="application/json")


def main() -> None:
    """Rewrite ``docs/openapi.json`` (run from the repository root)."""
    DOCUMENT_PATH.write_text(document_text())
    sys.stdout.write(f"wrote {DOCUMENT_PATH}\n")


if __name__ == "__main__":
    main()
