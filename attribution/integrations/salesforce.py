"""Salesforce, natively: Outbound Messages (SOAP) for Opportunity at
``POST /integrations/salesforce/outbound?token=<VOUCH_SALESFORCE_OUTBOUND_TOKEN>``.

Outbound Messages cannot sign their bodies, so a message is accepted only when the URL carries
the configured secret token (compared in constant time) *and* its ``OrganizationId`` is in
``VOUCH_SALESFORCE_ORG_IDS`` (15- or 18-character ids; compared on the first 15). The body is
parsed with ``defusedxml`` (no DTDs, no entities, no external references).

Request (``text/xml``), as Salesforce sends it::

    <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
     <soapenv:Body>
      <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
       <OrganizationId>00D…</OrganizationId> <ActionId>04k…</ActionId>
       <SessionId xsi:nil="true"/> <EnterpriseUrl>…</EnterpriseUrl> <PartnerUrl>…</PartnerUrl>
       <Notification>                                  (1 to 100 of them)
        <Id>04l…</Id>                                  (the redelivery key)
        <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
         <sf:Id>006…</sf:Id> <sf:StageName>…</sf:StageName> <sf:Amount>12000.5</sf:Amount>
         <sf:CloseDate>2026-03-05</sf:CloseDate> <sf:IsWon>true</sf:IsWon>
         <sf:IsClosed>true</sf:IsClosed> <sf:CurrencyIsoCode>EUR</sf:CurrencyIsoCode>
         <sf:Name>…</sf:Name> <sf:OwnerId>005…</sf:OwnerId> <sf:Type>New Business</sf:Type>
         <sf:Vouch_Referral_Id__c>…</sf:Vouch_Referral_Id__c>   (the opaque referral id)
         <sf:Vouch_Contact_Email__c>…</sf:Vouch_Contact_Email__c> (the primary contact's email)
        </sObject>
       </Notification>
      </notifications>
     </soapenv:Body>
    </soapenv:Envelope>

Each notification is applied once (keyed by its ``Id``) in its own transaction, as an
opportunity upsert with provider ``salesforce`` and the Opportunity ``Id`` as its CRM id; the
referral is the one named by ``Vouch_Referral_Id__c``, else the referred person whose email is
``Vouch_Contact_Email__c``. A notification that cannot be applied is kept as ``failed`` with the
reason. Response (``text/xml``): the SOAP acknowledgement, so Salesforce stops retrying::

    <soapenv:Envelope …><soapenv:Body><notificationsResponse
      xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>
    </soapenv:Body></soapenv:Envelope>
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import opportunities
from vouch.attribution.inbound import SignatureRejected, parse_opportunity
from vouch.attribution.integrations import events
from vouch.core.errors import ValidationFailed
from vouch.models.enums import IntegrationEventStatus, IntegrationProvider

PROVIDER = IntegrationProvider.SALESFORCE
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100
ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body>'
    f'<notificationsResponse xmlns="{OUTBOUND}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
)


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    object_type: str
    fields: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    organization_id: str
    action_id: str
    notifications: list[Notification]


def check_token(token: str | None, *, expected: str) -> None:
    """The URL's token must be the configured one (checked before the body is parsed)."""
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise SignatureRejected("the token in the endpoint URL is missing or wrong")


def check_organization(organization_id: str, *, allowed: list[str]) -> None:
    """The message must come from an allowed organisation (15- or 18-character ids)."""
    if organization_id[:15] not in {org[:15] for org in allowed}:
        raise SignatureRejected("this Salesforce organization is not allowed")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: Element | None) -> str | None:
    if element is None or element.get(f"{{{XSI}}}nil") == "true":
        return None
    return (element.text or "").strip() or None


def parse(body: bytes) -> OutboundMessage:
    """The notifications of an Outbound Message, or ``ValidationFailed`` saying what is wrong."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError):
        raise ValidationFailed("body is not a well-formed SOAP message", field="body") from None
    notifications = root.find(f"{{{SOAP}}}Body/{{{OUTBOUND}}}notifications")
    if root.tag != f"{{{SOAP}}}Envelope" or notifications is None:
        raise ValidationFailed(
            "not an Outbound Message (soapenv:Envelope/soapenv:Body/notifications)", field="body"
        )
    org = _text(notifications.find(f"{{{OUTBOUND}}}OrganizationId"))
    if not org:
        raise ValidationFailed("OrganizationId is missing", field="OrganizationId")
    items = notifications.findall(f"{{{OUTBOUND}}}Notification")
    if not items or len(items) > MAX_NOTIFICATIONS:
        raise ValidationFailed("a message carries 1 to 100 notifications", field="Notification")
    parsed = []
    for item in items:
        notification_id = _text(item.find(f"{{{OUTBOUND}}}Id"))
        sobject = item.find(f"{{{OUTBOUND}}}sObject")
        if not notification_id or sobject is None:
            raise ValidationFailed(
                "a Notification needs an Id and an sObject", field="Notification"
            )
        fields = {_local(child.tag): _text(child) for child in sobject}
        parsed.append(
            Notification(
                id=notification_id[:64],
                object_type=(sobject.get(f"{{{XSI}}}type") or "").rsplit(":", 1)[-1],
                fields=fields,
            )
        )
    return OutboundMessage(
        organization_id=org,
        action_id=_text(notifications.find(f"{{{OUTBOUND}}}ActionId")) or "",
        notifications=parsed,
    )


def _opportunity(fields: dict[str, str | None]) -> dict[str, Any]:
    """An Opportunity sObject in the shape the generic endpoint's Salesforce mapping reads."""
    data: dict[str, Any] = {key: value for key, value in fields.items() if value is not None}
    email = fields.get("Vouch_Contact_Email__c")
    if email:
        data["ContactRoles"] = [{"Email": email, "Role": "primary"}]
    return data


async def apply(
    session: AsyncSession,
    notification: Notification,
    *,
    organization_id: str,
    now: datetime,
    decode_referral: Callable[[str], int],
) -> str:
    """Apply one notification once; the status it ended in. The caller commits."""
    seen = await events.begin(
        session,
        provider=PROVIDER,
        event_id=notification.id,
        event_type=f"outbound.{notification.object_type or 'unknown'}",
        object_id=notification.fields.get("Id"),
        now=now,
    )
    if seen is not None:
        return seen.status
    if notification.object_type != "Opportunity":
        await events.finish(
            session,
            provider=PROVIDER,
            event_id=notification.id,
            status=IntegrationEventStatus.IGNORED,
            detail=f"{notification.object_type or 'an unknown object'} is not an Opportunity",
        )
        return IntegrationEventStatus.IGNORED
    data = parse_opportunity("salesforce", _opportunity(notification.fields), decode_referral)
    result = await opportunities.upsert_opportunity(
        session,
        data,
        source="crm:salesforce",
        actor=f"salesforce:{organization_id[:18]}",
        now=now,
    )
    await events.finish(
        session,
        provider=PROVIDER,
        event_id=notification.id,
        status=IntegrationEventStatus.PROCESSED,
        result={"opportunity_id": result.opportunity.id, "created": result.created},
    )
    return IntegrationEventStatus.PROCESSED
