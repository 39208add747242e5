"""POST /integrations/salesforce/outbound: Outbound Messages (SOAP) for Opportunity move a demo
referral end to end; the token and the organisation are both required; hostile XML is refused."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.factories import make_reward_rule
from tests.integrations.conftest import SALESFORCE_ORG, SALESFORCE_TOKEN, make_friend
from vouch.api.ids import encode_id
from vouch.models import IntegrationEvent, Opportunity, OpportunityEvent, Reward

ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
    b'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
    b"</notificationsResponse></soapenv:Body></soapenv:Envelope>"
)


def opportunity(notification_id: str, **fields: str | None) -> str:
    values: dict[str, str | None] = {
        "Id": "0065g00000AbCdEAAZ",
        "Name": "NASA analytics platform",
        "StageName": "Prospecting",
        "Amount": "12000.5",
        "CurrencyIsoCode": "EUR",
        "CloseDate": "2026-03-05",
        "IsClosed": "false",
        "IsWon": "false",
        "Type": "New Business",
        "OwnerId": "0055g00000XyZ12AAB",
    }
    values.update(fields)
    body = "".join(
        f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{v}</sf:{k}>"
        for k, v in values.items()
    )
    return (
        f"<Notification><Id>{notification_id}</Id>"
        '<sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"{body}</sObject></Notification>"
    )


def envelope(*notifications: str, org: str = SALESFORCE_ORG) -> bytes:
    """An Outbound Message as Salesforce posts it (see the Outbound Messaging WSDL)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId>"
        "<ActionId>04k5g000000CaRkAAK</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://nasa.my.salesforce.com/services/Soap/c/61.0/00D5g000004XyZ1</EnterpriseUrl>"
        "<PartnerUrl>https://nasa.my.salesforce.com/services/Soap/u/61.0/00D5g000004XyZ1</PartnerUrl>"
        f"{''.join(notifications)}"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


async def post(client, body: bytes, token: str | None = SALESFORCE_TOKEN):
    url = "/integrations/salesforce/outbound"
    if token is not None:
        url += f"?token={token}"
    return await client.post(
        url, content=body, headers={"content-type": "text/xml; charset=utf-8", "soapaction": '""'}
    )


async def test_an_opportunity_moves_the_referral_from_open_to_won(client, session, codec):
    friend = await make_friend(client, session, codec, "katherine@nasa.example")
    await make_reward_rule(session, program=friend.setup.program, amount_minor=2500)
    await session.commit()
    referral_id = encode_id("Referral", friend.referral.id)

    opened = await post(
        client, envelope(opportunity("04l5g00000A1", Vouch_Referral_Id__c=referral_id))
    )
    assert opened.status_code == 200
    assert opened.content == ACK
    assert opened.headers["content-type"].startswith("text/xml")
    opp = await session.scalar(select(Opportunity))
    assert (
        opp.provider,
        opp.crm_id,
        opp.stage,
        opp.status,
        opp.amount_minor,
        opp.currency,
        opp.referral_id,
    ) == (
        "salesforce",
        "0065g00000AbCdEAAZ",
        "Prospecting",
        "open",
        1_200_050,
        "EUR",
        friend.referral.id,
    )
    await session.refresh(friend.referral)
    assert friend.referral.status == "opportunity"

    won = opportunity(
        "04l5g00000A2",
        StageName="Closed Won",
        IsClosed="true",
        IsWon="true",
        Amount="15000",
        Vouch_Referral_Id__c=None,
        Vouch_Contact_Email__c="Katherine@NASA.example",  # found by the primary contact now
    )
    assert (await post(client, envelope(won))).content == ACK
    await session.refresh(opp)
    assert (opp.stage, opp.status, opp.amount_minor) == ("Closed Won", "won", 1_500_000)
    await session.refresh(friend.referral)
    assert friend.referral.status == "won"
    reward = await session.scalar(select(Reward).where(Reward.referral_id == friend.referral.id))
    assert (reward.amount_minor, reward.state) == (2500, "pending")
    history = list(
        await session.scalars(select(OpportunityEvent.to_stage).order_by(OpportunityEvent.id))
    )
    assert history == ["Prospecting", "Closed Won"]


async def test_salesforce_retries_are_acknowledged_and_applied_once(client, session, codec):
    await make_friend(client, session, codec, "dorothy@nasa.example")
    body = envelope(
        opportunity(
            "04l5g00000B1", Id="0065g00000Zz1AAA", Vouch_Contact_Email__c="dorothy@nasa.example"
        ),
        opportunity("04l5g00000B2", Id="0065g00000Zz2AAA", Amount="12.345"),  # too precise
        '<Notification><Id>04l5g00000B3</Id><sObject xsi:type="sf:Account" '
        'xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>0015g00000Q</sf:Id>'
        "</sObject></Notification>",
    )
    for _ in range(3):
        response = await post(client, body)
        assert response.content == ACK
    assert await session.scalar(select(func.count()).select_from(Opportunity)) == 1
    assert await session.scalar(select(func.count()).select_from(OpportunityEvent)) == 1
    rows = list(
        await session.execute(
            select(
                IntegrationEvent.event_id, IntegrationEvent.status, IntegrationEvent.detail
            ).order_by(IntegrationEvent.event_id)
        )
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("04l5g00000B1", "processed"),
        ("04l5g00000B2", "failed"),
        ("04l5g00000B3", "ignored"),
    ]
    assert rows[1][2] == "INVALID data.Amount: data.Amount has more decimals than EUR allows"


async def test_token_and_organisation_are_both_required(client, session):
    body = envelope(opportunity("04l5g00000C1"))
    missing = await post(client, body, token=None)
    assert missing.status_code == 401
    wrong = await post(client, body, token="f" * 40)
    assert wrong.status_code == 401
    other_org = await post(client, envelope(opportunity("04l5g00000C2"), org="00D000000000001AAA"))
    assert other_org.status_code == 401
    assert "organization" in other_org.json()["error"]["message"]
    fifteen = await post(client, envelope(opportunity("04l5g00000C3"), org=SALESFORCE_ORG[:15]))
    assert fifteen.content == ACK
    assert await session.scalar(select(func.count()).select_from(Opportunity)) == 1
    assert await session.scalar(select(func.count()).select_from(IntegrationEvent)) == 1


async def test_hostile_or_malformed_xml_is_refused_and_writes_nothing(client, session):
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>"
        b"<soapenv:Body>&lol2;</soapenv:Body></soapenv:Envelope>"
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>'
    )
    for body in (bomb, external, b"<not-closed>", b"", b'{"json": true}'):
        response = await post(client, body)
        assert response.status_code == 422, body
        assert response.json()["error"]["field"] == "body"
    not_outbound = b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'/>"
    assert (await post(client, not_outbound)).status_code == 422
    assert await session.scalar(select(func.count()).select_from(IntegrationEvent)) == 0


async def test_refused_notifications_are_visible_to_admins(client, session):
    from tests.api.graphql import gql
    from tests.factories import make_api_key

    body = envelope(
        opportunity("04l5g00000D1", Id="0065g00000Zz3AAA", Amount="1.234"),
        opportunity("04l5g00000D2", Id="0065g00000Zz4AAA"),
    )
    assert (await post(client, body)).content == ACK
    admin = await make_api_key(session, scopes=["admin"])
    reader = await make_api_key(session, scopes=["read"])
    query = """query($p: String, $s: String) { integrationEvents(provider: $p, status: $s) {
      totalCount nodes { provider eventId eventType objectId status detail } } }"""
    failed = await gql(client, query, {"p": "salesforce", "s": "failed"}, token=admin)
    assert failed["data"]["integrationEvents"] == {
        "totalCount": 1,
        "nodes": [
            {
                "provider": "salesforce",
                "eventId": "04l5g00000D1",
                "eventType": "outbound.Opportunity",
                "objectId": "0065g00000Zz3AAA",
                "status": "failed",
                "detail": "INVALID data.Amount: data.Amount has more decimals than EUR allows",
            }
        ],
    }
    everything = await gql(client, query, {"p": "salesforce"}, token=admin)
    assert everything["data"]["integrationEvents"]["totalCount"] == 2
    refused = await gql(client, query, {"p": "salesforce"}, token=reader, expect_errors=True)
    assert refused["data"] is None
    bad = await gql(client, query, {"s": "lost"}, token=admin, expect_errors=True)
    assert bad["errors"][0]["extensions"]["field"] == "status"
