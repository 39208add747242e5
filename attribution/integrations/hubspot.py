"""HubSpot, natively: ``POST /integrations/hubspot/webhook`` and a fetch worker.

**The webhook.** A HubSpot app's webhook subscription posts a JSON array of events, signed with
``X-HubSpot-Signature-v3``: base64 of HMAC-SHA256, keyed by the app's client secret
(``VOUCH_HUBSPOT_CLIENT_SECRET``), over ``method + URI + body + X-HubSpot-Request-Timestamp``.
The URI is the one HubSpot called (``VOUCH_HUBSPOT_WEBHOOK_URL``, else ``VOUCH_PUBLIC_BASE_URL``
+ the request path and query), with the URL-encoded characters HubSpot lists decoded. A
timestamp more than 5 minutes away from now is refused. Request (``application/json``)::

    [{"eventId": 100, "subscriptionId": 2300, "portalId": 62515, "appId": 54321,
      "occurredAt": 1764800000000, "subscriptionType": "deal.propertyChange",
      "attemptNumber": 0, "objectId": 987001, "propertyName": "dealstage",
      "propertyValue": "closedwon", "changeSource": "CRM"}, …]

``deal.creation``, ``deal.deletion``, ``deal.restore``, ``deal.propertyChange`` of
``dealstage``, ``amount``, ``closedate``, ``pipeline`` (and ``deal_currency_code``,
``dealname``), and ``deal.associationChange`` (deal ↔ contact) each queue one fetch of the deal
(``integration_jobs``; one pending fetch per deal answers any number of events); every other
event is recorded as ignored. Each ``eventId`` is recorded once, so HubSpot's retries are
no-ops. Response: ``{"received": n, "queued": n, "ignored": n, "replayed": n}`` (200), answered
without calling HubSpot.

**The worker** reads the queue (``FOR UPDATE SKIP LOCKED``) and, per deal, reads HubSpot's CRM v3
API with a private-app token (``VOUCH_HUBSPOT_ACCESS_TOKEN``): ``GET
/crm/v3/objects/deals/{id}?properties=…&associations=contacts``, then ``POST
/crm/v3/objects/contacts/batch/read`` for the associated contacts' emails. A 429 is retried
after its ``Retry-After``; other failures with exponential backoff (dead after 10 attempts). The
deal becomes an opportunity with provider ``hubspot`` and HubSpot's deal id as its CRM id; its
stage is won or lost per pipeline (``VOUCH_HUBSPOT_STAGES``, default ``{"default": {"won":
["closedwon"], "lost": ["closedlost"]}}``; a pipeline not listed falls back to HubSpot's own
``hs_is_closed_won`` / ``hs_is_closed``). A deal HubSpot no longer has (deleted) is closed as
lost. With ``VOUCH_HUBSPOT_WRITE_BACK`` the attribution is written back onto the deal and the
referred contact (custom properties ``vouch_referral_id``, ``vouch_advocate``,
``vouch_program``) so it shows in HubSpot reports.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import opportunities
from vouch.attribution.inbound import SignatureRejected, TimestampRejected, parse_opportunity
from vouch.attribution.integrations import events
from vouch.attribution.opportunities import OpportunityData
from vouch.core.emails import normalize_email
from vouch.core.errors import ValidationFailed
from vouch.models import Advocate, Opportunity, Program, Referral
from vouch.models.enums import (
    CrmProvider,
    IntegrationEventStatus,
    IntegrationProvider,
    OpportunityStatus,
)

PROVIDER = IntegrationProvider.HUBSPOT
JOB_KIND = "deal"
TOLERANCE_MS = 5 * 60 * 1000
MAX_EVENTS = 1000
DEAL_PROPERTIES = (
    "dealname",
    "amount",
    "deal_currency_code",
    "dealstage",
    "pipeline",
    "closedate",
    "hubspot_owner_id",
    "dealtype",
    "hs_is_closed_won",
    "hs_is_closed",
    "vouch_referral_id",
)
WATCHED_PROPERTIES = frozenset(
    {"dealstage", "amount", "closedate", "pipeline", "deal_currency_code", "dealname"}
)
DEAL_EVENTS = frozenset({"deal.creation", "deal.deletion", "deal.restore", "deal.merge"})
# HubSpot decodes these in the request URI before signing (its request-validation guide).
_URI_DECODE = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
DELETED_STAGE = "deleted in HubSpot"


# --- the webhook -------------------------------------------------------------------------------


def signing_uri(uri: str) -> str:
    for encoded, char in _URI_DECODE.items():
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    return uri


def signature_v3(client_secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """``X-HubSpot-Signature-v3`` for a request."""
    source = method.encode() + signing_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(client_secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(
    *,
    client_secret: str,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: datetime,
) -> None:
    """Refuse a request HubSpot did not sign, or signed more than 5 minutes from now."""
    if not signature or not timestamp:
        raise SignatureRejected("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
    try:
        sent_ms = int(timestamp)
    except ValueError:
        raise TimestampRejected("X-HubSpot-Request-Timestamp must be milliseconds") from None
    if abs(now.timestamp() * 1000 - sent_ms) > TOLERANCE_MS:
        raise TimestampRejected("X-HubSpot-Request-Timestamp is older than 5 minutes")
    expected = signature_v3(client_secret, method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureRejected("X-HubSpot-Signature-v3 does not match")


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    event_id: str
    subscription_type: str
    deal_id: str | None  # None: an event Vouch does not use
    reason: str | None = None


def _deal_of(item: dict[str, Any]) -> tuple[str | None, str | None]:
    kind = str(item.get("subscriptionType") or "")
    object_type = str(item.get("objectTypeId") or "")
    if kind.startswith("object."):  # the generic form: objectTypeId 0-3 is a deal
        if object_type != "0-3":
            return None, "not a deal"
        kind = "deal." + kind.removeprefix("object.")
    object_id = item.get("objectId")
    if kind in DEAL_EVENTS:
        return (str(object_id) if object_id else None), None
    if kind == "deal.propertyChange":
        if item.get("propertyName") not in WATCHED_PROPERTIES:
            return None, f"property {str(item.get('propertyName'))[:64]} is not used by Vouch"
        return (str(object_id) if object_id else None), None
    if kind == "deal.associationChange":
        association = str(item.get("associationType") or "")
        if association.startswith("DEAL_TO_CONTACT"):
            return str(item.get("fromObjectId") or "") or None, None
        if association.startswith("CONTACT_TO_DEAL"):
            return str(item.get("toObjectId") or "") or None, None
        return None, "not a deal-contact association"
    return None, f"{kind[:64] or 'an unknown event'} is not used by Vouch"


def parse_events(body: bytes) -> list[WebhookEvent]:
    """HubSpot's JSON array of events; ``ValidationFailed`` if it is not one."""
    try:
        items = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValidationFailed("body is not JSON", field="body") from None
    if not isinstance(items, list) or not items or len(items) > MAX_EVENTS:
        raise ValidationFailed(f"body must be an array of 1 to {MAX_EVENTS} events", field="body")
    parsed = []
    for i, item in enumerate(items):
        event_id = item.get("eventId") if isinstance(item, dict) else None
        if isinstance(event_id, bool) or not isinstance(event_id, int | str):
            raise ValidationFailed("every event needs an eventId", field=f"[{i}].eventId")
        if not _HUBSPOT_ID.fullmatch(str(event_id)):
            raise ValidationFailed("eventId must be HubSpot's numeric id", field=f"[{i}].eventId")
        deal_id, reason = _deal_of(item)
        if deal_id is not None and not _HUBSPOT_ID.fullmatch(deal_id):
            deal_id, reason = None, "objectId is not a HubSpot id"
        kind = str(item.get("subscriptionType") or "unknown")
        parsed.append(
            WebhookEvent(
                event_id=str(event_id),
                # stored and shown in integrationEvents: printable text only (no NUL)
                subscription_type="".join(c for c in kind if c.isprintable())[:64] or "unknown",
                deal_id=deal_id,
                reason="".join(c for c in reason if c.isprintable()) if reason else None,
            )
        )
    return parsed


# HubSpot's ids (events, deals, contacts) are integers: ASCII digits, at most 20 of them.
_HUBSPOT_ID = re.compile(r"[0-9]{1,20}", re.ASCII)


async def receive(session: AsyncSession, event: WebhookEvent, *, now: datetime) -> str:
    """Record one event once and queue its deal's fetch: ``queued``, ``ignored`` or
    ``replayed``. The caller commits."""
    seen = await events.begin(
        session,
        provider=PROVIDER,
        event_id=event.event_id,
        event_type=event.subscription_type,
        object_id=event.deal_id,
        now=now,
    )
    if seen is not None:
        return "replayed"
    if event.deal_id is None:
        await events.finish(
            session,
            provider=PROVIDER,
            event_id=event.event_id,
            status=IntegrationEventStatus.IGNORED,
            detail=event.reason,
        )
        return "ignored"
    await events.enqueue_job(
        session, provider=PROVIDER, kind=JOB_KIND, object_id=event.deal_id, now=now
    )
    await events.finish(
        session,
        provider=PROVIDER,
        event_id=event.event_id,
        status=IntegrationEventStatus.QUEUED,
        result={"deal_id": event.deal_id},
    )
    return "queued"


# --- HubSpot's CRM v3 API ----------------------------------------------------------------------


class HubSpotUnavailable(Exception):
    """HubSpot did not answer usefully now; try the job again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(1.0, min(3600.0, float(response.headers.get("retry-after", "10"))))
    except ValueError:
        return 10.0


class HubSpotApi:
    """The four CRM v3 calls Vouch makes, over an ``httpx.AsyncClient``."""

    def __init__(self, client: httpx.AsyncClient, *, base_url: str, token: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.headers = {"authorization": f"Bearer {token}", "accept": "application/json"}

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.client.request(
                method, self.base_url + path, headers=self.headers, timeout=10.0, **kwargs
            )
        except httpx.HTTPError as exc:
            raise HubSpotUnavailable(f"{method} {path}: {type(exc).__name__}") from None
        if response.status_code == 429:
            raise HubSpotUnavailable(f"{method} {path}: 429", retry_after=_retry_after(response))
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise HubSpotUnavailable(f"{method} {path}: {response.status_code}")
        return response

    async def deal(self, deal_id: str) -> dict[str, Any] | None:
        """The deal with its contact associations; None if HubSpot has no such deal."""
        response = await self._call(
            "GET",
            f"/crm/v3/objects/deals/{deal_id}",
            params={"properties": ",".join(DEAL_PROPERTIES), "associations": "contacts"},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise HubSpotUnavailable(f"GET deal: {response.status_code}")
        body: dict[str, Any] = response.json()
        return body

    async def contact_emails(self, contact_ids: list[str]) -> dict[str, str]:
        """Contact id -> email, for the ids HubSpot still has."""
        if not contact_ids:
            return {}
        response = await self._call(
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            json={"properties": ["email"], "inputs": [{"id": i} for i in contact_ids[:100]]},
        )
        if response.status_code not in (200, 207):
            raise HubSpotUnavailable(f"POST contacts/batch/read: {response.status_code}")
        out: dict[str, str] = {}
        for row in response.json().get("results", []):
            email = (row.get("properties") or {}).get("email")
            if isinstance(email, str) and "@" in email:
                out[str(row.get("id"))] = email
        return out

    async def update(self, object_type: str, object_id: str, properties: dict[str, str]) -> None:
        response = await self._call(
            "PATCH", f"/crm/v3/objects/{object_type}/{object_id}", json={"properties": properties}
        )
        if response.status_code != 200:
            raise HubSpotUnavailable(f"PATCH {object_type}: {response.status_code}")


# --- the worker's step -------------------------------------------------------------------------


def deal_status(properties: dict[str, Any], stages: dict[str, dict[str, list[str]]]) -> str:
    """won, lost or open: the pipeline's configured stages, else HubSpot's own flags."""
    stage = str(properties.get("dealstage") or "")
    pipeline = str(properties.get("pipeline") or "default")
    mapping = stages.get(pipeline)
    if mapping is not None:
        if stage in mapping.get("won", []):
            return OpportunityStatus.WON
        if stage in mapping.get("lost", []):
            return OpportunityStatus.LOST
        return OpportunityStatus.OPEN
    if str(properties.get("hs_is_closed_won")).lower() == "true":
        return OpportunityStatus.WON
    if str(properties.get("hs_is_closed")).lower() == "true":
        return OpportunityStatus.LOST
    return OpportunityStatus.OPEN


def to_opportunity(
    deal: dict[str, Any],
    emails: list[str],
    *,
    stages: dict[str, dict[str, list[str]]],
    decode_referral: Callable[[str], int],
) -> OpportunityData:
    properties = dict(deal.get("properties") or {})
    # The generic mapping reads won/closed from these flags; set them from the stage mapping.
    status = deal_status(properties, stages)
    properties["hs_is_closed_won"] = "true" if status == OpportunityStatus.WON else "false"
    properties["hs_is_closed"] = "false" if status == OpportunityStatus.OPEN else "true"
    properties["dealstage"] = properties.get("dealstage") or "unknown"
    data = parse_opportunity(
        "hubspot",
        {
            "objectId": str(deal.get("id") or ""),
            "properties": properties,
            "contacts": [{"email": e, "role": None} for e in emails],
            "vouch_referral_id": properties.get("vouch_referral_id") or None,
        },
        decode_referral,
    )
    if data.status != status:  # "closedwon" in an unmapped pipeline is not won by itself
        data = replace(data, status=status)
    return data


@dataclass(frozen=True, slots=True)
class SyncResult:
    deal_id: str
    opportunity_id: int | None
    referral_id: int | None
    outcome: str  # "synced", "deleted", "unknown"


async def _close_deleted(session: AsyncSession, deal_id: str, *, now: datetime) -> SyncResult:
    opp = await session.scalar(
        select(Opportunity).where(
            Opportunity.provider == CrmProvider.HUBSPOT, Opportunity.crm_id == deal_id
        )
    )
    if opp is None:
        return SyncResult(deal_id=deal_id, opportunity_id=None, referral_id=None, outcome="unknown")
    result = await opportunities.move_stage(
        session,
        deal_id,
        provider=CrmProvider.HUBSPOT,
        stage=DELETED_STAGE,
        status=OpportunityStatus.LOST,
        amount_minor=None,
        source="crm:hubspot",
        actor="hubspot:deal.deletion",
        now=now,
    )
    return SyncResult(
        deal_id=deal_id,
        opportunity_id=result.opportunity.id,
        referral_id=result.opportunity.referral_id,
        outcome="deleted",
    )


async def fetch_deal(
    api: HubSpotApi,
    deal_id: str,
    *,
    stages: dict[str, dict[str, list[str]]],
    decode_referral: Callable[[str], int],
) -> OpportunityData | None:
    """Read the deal and its contacts' emails from HubSpot (no database involved): the
    opportunity to upsert, or ``None`` when the deal was deleted or archived. Raises
    ``HubSpotUnavailable`` (try later) or a ``DomainError`` (the deal cannot be taken)."""
    deal = await api.deal(deal_id)
    if deal is None or deal.get("archived") is True:
        return None
    associations = ((deal.get("associations") or {}).get("contacts") or {}).get("results") or []
    contact_ids = [str(a.get("id")) for a in associations if isinstance(a, dict) and a.get("id")]
    emails = await api.contact_emails(list(dict.fromkeys(contact_ids)))
    return to_opportunity(
        deal,
        [emails[i] for i in contact_ids if i in emails],
        stages=stages,
        decode_referral=decode_referral,
    )


async def apply_deal(
    session: AsyncSession, deal_id: str, data: OpportunityData | None, *, now: datetime
) -> SyncResult:
    """Upsert the fetched deal's opportunity (or close it as lost when HubSpot deleted it), in
    a savepoint of the caller's transaction, so a refused deal leaves nothing behind."""
    async with session.begin_nested():
        if data is None:
            return await _close_deleted(session, deal_id, now=now)
        result = await opportunities.upsert_opportunity(
            session, data, source="crm:hubspot", actor="hubspot", now=now
        )
    return SyncResult(
        deal_id=deal_id,
        opportunity_id=result.opportunity.id,
        referral_id=result.opportunity.referral_id,
        outcome="synced",
    )


@dataclass(frozen=True, slots=True)
class WriteBack:
    """What to write onto the deal and onto the referred contact in HubSpot."""

    deal_id: str
    person_key: str
    properties: dict[str, str]


async def write_back_for(
    session: AsyncSession,
    deal_id: str,
    referral_id: int,
    *,
    encode_referral: Callable[[int], str],
) -> WriteBack | None:
    """The attribution to write back for a synced deal (read in the caller's transaction)."""
    row = (
        await session.execute(
            select(Referral.person_key, Advocate.external_id, Program.slug)
            .join(Advocate, Advocate.id == Referral.advocate_id)
            .join(Program, Program.id == Referral.program_id)
            .where(Referral.id == referral_id)
        )
    ).first()
    if row is None:
        return None
    person_key, advocate, program = row
    return WriteBack(
        deal_id=deal_id,
        person_key=person_key,
        properties={
            "vouch_referral_id": encode_referral(referral_id),
            "vouch_advocate": advocate,
            "vouch_program": program,
        },
    )


async def write_back(api: HubSpotApi, plan: WriteBack) -> None:
    """Put the attribution onto the deal and onto the referred contact (HubSpot calls only)."""
    await api.update("deals", plan.deal_id, plan.properties)
    deal = await api.deal(plan.deal_id)
    associations = (((deal or {}).get("associations") or {}).get("contacts") or {}).get("results")
    contact_ids = [str(a["id"]) for a in associations or [] if isinstance(a, dict) and a.get("id")]
    emails = await api.contact_emails(contact_ids)
    for contact_id, email in emails.items():
        if normalize_email(email) == plan.person_key:
            await api.update("contacts", contact_id, plan.properties)
