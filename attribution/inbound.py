"""Signed inbound webhooks from CRM and billing systems.

Requests are signed with the Standard Webhooks scheme (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``) under the inbound
secret, ``whsec_`` + base64, whose decoded bytes are the HMAC key (``core.webhook_secrets``).
A timestamp outside the tolerance is refused; a message id seen before is not processed again
(the stored answer is returned), and reusing an id for a different body is refused.

Payloads (JSON): ``{"type": ..., "provider": ..., "data": {...}}``

``type = "opportunity.upsert"``
  * ``provider = "hubspot"``: ``data`` is a HubSpot deal: ``{"objectId": 123, "properties":
    {"dealname", "amount" (major units, string), "deal_currency_code", "dealstage",
    "hs_is_closed_won", "hs_is_closed", "closedate" (ISO date or epoch ms), "hubspot_owner_id",
    "dealtype" ("newbusiness" | "existingbusiness" | "renewal")}, "contacts": [{"email",
    "role"}], "vouch_referral_id": "<opaque referral id>"}``.
  * ``provider = "salesforce"``: ``data`` is an Opportunity sObject: ``{"Id", "Name",
    "Amount" (major units), "CurrencyIsoCode", "StageName", "IsClosed", "IsWon", "CloseDate",
    "OwnerId", "Type" ("New Business" | "Existing Customer - Upgrade" | "Existing Customer -
    Renewal"), "ContactRoles": [{"Email", "Role"}], "Vouch_Referral_Id__c"}``.
  * ``provider = "vouch"``: ``data`` uses Vouch's own field names: ``crm_id, crm_provider
    (hubspot | salesforce | other, default other), stage, status, kind, amount_minor, currency,
    name, close_date, owner, contacts, referral_id``.

  CRM ids are stored as the CRM gives them (``objectId``, ``Id``, ``crm_id``) with the provider
  in its own column, so revenue can name the deal by the same plain id.

``type = "signal.recorded"`` (customer-success, survey or product tools; handled by the
advocacy engine): ``data = {"advocate_external_id", "kind" (nps, csat, usage_milestone, ...),
"value", "occurred_at", "external_id", "data"}``.

``type = "revenue.recorded"`` (any billing system): ``data = {"external_id", "kind"
(one_time | recurring | refund), "amount_minor", "currency", "occurred_at" (ISO 8601 with
offset), "opportunity_crm_id" | "referral_id", "opportunity_provider" (only when two CRMs
use the same id), "refunds_external_id"}``.

The referral is linked by its opaque id when given, otherwise by matching contact emails to
referred people.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vouch.access import idempotency
from vouch.attribution import opportunities, revenue, webhooks
from vouch.attribution.opportunities import ContactData, OpportunityData, parse_provider
from vouch.attribution.revenue import RevenueData
from vouch.core.errors import DomainError, ErrorCode, ValidationFailed
from vouch.core.ids import encode_id, public_ids
from vouch.core.jsonbody import InvalidJson, loads_untrusted
from vouch.core.money import check_currency, minor_unit_exponent
from vouch.models.enums import CrmProvider

MAX_BODY_BYTES = 256 * 1024
# (session, data, provider, now) -> fields for the response
ExtraHandler = Callable[[AsyncSession, dict[str, Any], str, datetime], Awaitable[dict[str, Any]]]
IDEMPOTENCY_SCOPE = "inbound_webhook"
# The credential of inbound webhooks: the shared signing secret.
IDEMPOTENCY_OWNER = "inbound"


class SignatureRejected(DomainError):
    """The request is not provably from the configured sender (HTTP 401)."""

    code = ErrorCode.FORBIDDEN


class TimestampRejected(DomainError):
    """The signed timestamp is too old or in the future (HTTP 401)."""

    code = ErrorCode.EXPIRED


@dataclass(frozen=True, slots=True)
class InboundResult:
    response: dict[str, Any]
    replayed: bool


def verify(
    *,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_seconds: int,
    now: datetime,
) -> str:
    """Check signature and timestamp; returns the message id."""
    msg_id = headers.get("webhook-id", "")
    raw_ts = headers.get("webhook-timestamp", "")
    signature = headers.get("webhook-signature", "")
    if not msg_id or not raw_ts or not signature or len(msg_id) > 200:
        raise SignatureRejected("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(raw_ts)
    except ValueError:
        raise TimestampRejected("webhook-timestamp must be unix seconds") from None
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        raise TimestampRejected("webhook-timestamp is outside the allowed tolerance")
    if not webhooks.verify_signature(secret, msg_id, timestamp, body, signature):
        raise SignatureRejected("webhook-signature does not match")
    return msg_id


async def handle(
    session: AsyncSession,
    *,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_seconds: int,
    now: datetime,
    decode_referral: Callable[[str], int],
    extra: Mapping[str, ExtraHandler] | None = None,
) -> InboundResult:
    """Verify, deduplicate and apply one inbound webhook. The caller commits.

    ``extra`` maps further event types to handlers from higher layers (e.g. advocacy signals),
    which get the same verification, replay protection and transaction.
    """
    if len(body) > MAX_BODY_BYTES:
        raise ValidationFailed("payload is too large", field="body")
    msg_id = verify(
        secret=secret, headers=headers, body=body, tolerance_seconds=tolerance_seconds, now=now
    )
    stored = await idempotency.claim(
        session,
        scope=IDEMPOTENCY_SCOPE,
        key=msg_id,
        payload={"body_sha256": hashlib.sha256(body).hexdigest()},
        owner=IDEMPOTENCY_OWNER,
    )
    if stored is not None:  # answers stored before ids were opaque are replayed with opaque ids
        return InboundResult(response=public_ids(stored), replayed=True)
    try:
        message = loads_untrusted(body)
    except InvalidJson:
        raise ValidationFailed("body is not JSON", field="body") from None
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        raise ValidationFailed("body must be an object with a 'data' object", field="data")
    kind = message.get("type")
    data: dict[str, Any] = message["data"]
    source_actor = f"inbound:{str(message.get('provider') or 'unknown')[:32]}"
    if kind == "opportunity.upsert":
        parsed = parse_opportunity(str(message.get("provider") or ""), data, decode_referral)
        result = await opportunities.upsert_opportunity(
            session, parsed, source=f"crm:{message.get('provider')}", actor=source_actor, now=now
        )
        response = {
            "status": "processed",
            "type": kind,
            "opportunity_id": encode_id("Opportunity", result.opportunity.id),
            "created": result.created,
            "changed": result.changed,
        }
    elif kind == "revenue.recorded":
        rev = parse_revenue(data, decode_referral)
        recorded = await revenue.record_revenue(
            session, rev, source="billing", actor=source_actor, now=now
        )
        response = {
            "status": "processed",
            "type": kind,
            "revenue_event_id": encode_id("RevenueEvent", recorded.event.id),
            "created": recorded.created,
        }
    elif isinstance(kind, str) and extra and kind in extra:
        response = {"status": "processed", "type": kind} | await extra[kind](
            session, data, str(message.get("provider") or "webhook")[:32], now
        )
    else:
        known = ", ".join(["opportunity.upsert", "revenue.recorded", *sorted(extra or {})])
        raise ValidationFailed(f"type must be one of: {known}", field="type")
    await idempotency.store_response(
        session, scope=IDEMPOTENCY_SCOPE, key=msg_id, response=response, owner=IDEMPOTENCY_OWNER
    )
    return InboundResult(response=response, replayed=False)


# --- payload mapping ---------------------------------------------------------------------------


def _str(value: Any, field: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise ValidationFailed(f"{field} is required", field=field)
        return None
    if not isinstance(value, (str, int)):
        raise ValidationFailed(f"{field} must be a string", field=field)
    return str(value)


def to_minor(value: Any, currency: str, field: str) -> int:
    """A major-unit amount (``"1200.50"``) in minor units, refusing sub-minor precision."""
    if value is None or value == "":
        return 0
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValidationFailed(f"{field} is not a number", field=field) from None
    minor = amount.scaleb(minor_unit_exponent(currency))
    if minor != minor.to_integral_value() or not minor.is_finite():
        raise ValidationFailed(f"{field} has more decimals than {currency} allows", field=field)
    return int(minor)


def _date(value: Any, field: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC).date()
        return date.fromisoformat(str(value)[:10])
    except (ValueError, OverflowError, OSError):
        raise ValidationFailed(f"{field} is not a date", field=field) from None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _referral(value: Any, decode: Callable[[str], int], field: str) -> int | None:
    raw = _str(value, field, required=False)
    return decode(raw) if raw else None


def _contacts(items: Any, email_key: str, role_key: str) -> list[ContactData]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValidationFailed("contacts must be a list", field="contacts")
    out = []
    for item in items:
        if isinstance(item, dict) and item.get(email_key):
            out.append(ContactData(email=str(item[email_key]), role=item.get(role_key)))
    return out


_HUBSPOT_KINDS = {
    "newbusiness": "new_business",
    "existingbusiness": "expansion",
    "renewal": "renewal",
}
_SALESFORCE_KINDS = {
    "new business": "new_business",
    "existing customer - upgrade": "expansion",
    "existing customer - renewal": "renewal",
    "existing customer - replacement": "expansion",
}


def _currency(value: Any, field: str) -> str:
    """A CRM deal's currency: required (its amount is in major units), never assumed USD."""
    if not value:
        raise ValidationFailed("the deal's currency is required", field=field)
    return check_currency(str(value), field=field)


def parse_opportunity(
    provider: str, data: dict[str, Any], decode_referral: Callable[[str], int]
) -> OpportunityData:
    if provider == "hubspot":
        props = data.get("properties")
        if not isinstance(props, dict):
            raise ValidationFailed("a HubSpot deal needs 'properties'", field="data.properties")
        # Amounts come in major units: without a currency they cannot be read; never USD.
        currency = _currency(props.get("deal_currency_code"), "data.properties.deal_currency_code")
        stage = _str(props.get("dealstage"), "data.properties.dealstage") or ""
        won = _truthy(props.get("hs_is_closed_won")) or stage == "closedwon"
        closed = _truthy(props.get("hs_is_closed")) or stage in ("closedwon", "closedlost")
        return OpportunityData(
            provider=CrmProvider.HUBSPOT,
            crm_id=_str(data.get("objectId"), "data.objectId") or "",
            stage=stage,
            status="won" if won else ("lost" if closed else "open"),
            kind=_HUBSPOT_KINDS.get(str(props.get("dealtype") or "newbusiness"), "new_business"),
            amount_minor=to_minor(props.get("amount"), currency, "data.properties.amount"),
            currency=currency,
            name=_str(props.get("dealname"), "dealname", required=False),
            close_date=_date(props.get("closedate"), "data.properties.closedate"),
            owner=_str(props.get("hubspot_owner_id"), "owner", required=False),
            contacts=_contacts(data.get("contacts"), "email", "role"),
            referral_id=_referral(data.get("vouch_referral_id"), decode_referral, "referralId"),
        )
    if provider == "salesforce":
        currency = _currency(data.get("CurrencyIsoCode"), "data.CurrencyIsoCode")
        won = _truthy(data.get("IsWon"))
        closed = _truthy(data.get("IsClosed"))
        return OpportunityData(
            provider=CrmProvider.SALESFORCE,
            crm_id=_str(data.get("Id"), "data.Id") or "",
            stage=_str(data.get("StageName"), "data.StageName") or "",
            status="won" if won else ("lost" if closed else "open"),
            kind=_SALESFORCE_KINDS.get(
                str(data.get("Type") or "new business").lower(), "new_business"
            ),
            amount_minor=to_minor(data.get("Amount"), currency, "data.Amount"),
            currency=currency,
            name=_str(data.get("Name"), "Name", required=False),
            close_date=_date(data.get("CloseDate"), "data.CloseDate"),
            owner=_str(data.get("OwnerId"), "owner", required=False),
            contacts=_contacts(data.get("ContactRoles"), "Email", "Role"),
            referral_id=_referral(data.get("Vouch_Referral_Id__c"), decode_referral, "referralId"),
        )
    if provider == "vouch":
        amount = data.get("amount_minor", 0)
        if not isinstance(amount, int):
            raise ValidationFailed("amount_minor must be an integer", field="data.amount_minor")
        return OpportunityData(
            provider=parse_provider(
                _str(data.get("crm_provider"), "data.crm_provider", required=False),
                field="data.crm_provider",
            ),
            crm_id=_str(data.get("crm_id"), "data.crm_id") or "",
            stage=_str(data.get("stage"), "data.stage") or "",
            status=str(data.get("status") or "open"),
            kind=str(data.get("kind") or "new_business"),
            amount_minor=amount,
            currency=str(data["currency"]) if data.get("currency") else None,
            name=_str(data.get("name"), "name", required=False),
            close_date=_date(data.get("close_date"), "data.close_date"),
            owner=_str(data.get("owner"), "owner", required=False),
            contacts=_contacts(data.get("contacts"), "email", "role"),
            referral_id=_referral(data.get("referral_id"), decode_referral, "referralId"),
        )
    raise ValidationFailed("provider must be hubspot, salesforce or vouch", field="provider")


def parse_revenue(data: dict[str, Any], decode_referral: Callable[[str], int]) -> RevenueData:
    amount = data.get("amount_minor")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise ValidationFailed("amount_minor must be an integer", field="data.amount_minor")
    raw_at = _str(data.get("occurred_at"), "data.occurred_at") or ""
    try:
        occurred_at = datetime.fromisoformat(raw_at)
    except ValueError:
        raise ValidationFailed("occurred_at is not ISO 8601", field="data.occurred_at") from None
    return RevenueData(
        external_id=_str(data.get("external_id"), "data.external_id") or "",
        kind=str(data.get("kind") or ""),
        amount_minor=amount,
        currency=str(data["currency"]) if data.get("currency") else None,
        occurred_at=occurred_at,
        opportunity_crm_id=_str(data.get("opportunity_crm_id"), "opportunityCrmId", required=False),
        opportunity_provider=_str(
            data.get("opportunity_provider"), "opportunityProvider", required=False
        ),
        referral_id=_referral(data.get("referral_id"), decode_referral, "referralId"),
        refunds_external_id=_str(
            data.get("refunds_external_id"), "refundsExternalId", required=False
        ),
    )
