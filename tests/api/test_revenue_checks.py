"""Issue 13, item 11: money input is sanity-checked through recordRevenue; each refusal names
the field and writes nothing. A missing currency is the deal's, else the program's — never a
silent USD; a refund named by refundsExternalId needs nothing more than its amount."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tests.api.graphql import gql
from tests.attribution.factories import make_referral
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.api.ids import encode_id
from vouch.attribution import opportunities
from vouch.attribution.opportunities import OpportunityData
from vouch.core.clock import utcnow
from vouch.models import Opportunity, RevenueEvent

RECORD = """mutation($i: RecordRevenueInput!) { recordRevenue(input: $i) {
  revenueEvent { externalId kind amountMinor currency opportunityId }
  errors { field code } } }"""
REFERRED = datetime(2026, 3, 2, 12, tzinfo=UTC)


async def world(session, codec):
    program = await make_program(session, currency="EUR")
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=program)
    r1 = await make_referral(
        session, program=program, advocate=advocate, link=link, created_at=REFERRED
    )
    r2 = await make_referral(
        session, program=program, advocate=advocate, link=link, created_at=REFERRED
    )
    for crm, ref, currency in (("O1", r1, "GBP"), ("O2", r2, "GBP")):
        await opportunities.upsert_opportunity(
            session,
            OpportunityData(
                crm_id=crm,
                stage="open",
                amount_minor=10_000,
                currency=currency,
                referral_id=ref.id,
            ),
            source="crm",
            actor="crm",
            now=REFERRED,
        )
    return r1, await make_api_key(session, scopes=["write"])


async def record(client, key, **fields):
    values = {"kind": "one_time", "occurredAt": "2026-03-05T12:00:00+00:00", **fields}
    return (await gql(client, RECORD, {"i": values}, token=key))["data"]["recordRevenue"]


async def events(session) -> int:
    return int(await session.scalar(select(func.count()).select_from(RevenueEvent)))


async def test_money_input_refused_with_the_field_named(client, session, codec):
    r1, key = await world(session, codec)
    charge = await record(
        client, key, externalId="ch1", amountMinor=10_000, currency="GBP", opportunityCrmId="O1"
    )
    assert charge["errors"] == []
    assert await events(session) == 1
    future = (utcnow() + timedelta(days=1)).isoformat()
    bad: list[tuple[dict[str, object], str]] = [
        # a refund larger than its charge
        ({"kind": "refund", "amountMinor": 10_001, "refundsExternalId": "ch1"}, "amountMinor"),
        # a refund larger than what the deal was charged
        ({"kind": "refund", "amountMinor": 10_001, "opportunityCrmId": "O1"}, "amountMinor"),
        # a refund against another deal than its charge's
        (
            {
                "kind": "refund",
                "amountMinor": 100,
                "refundsExternalId": "ch1",
                "opportunityCrmId": "O2",
            },
            "opportunityCrmId",
        ),
        # a refund in another currency than its charge
        (
            {"kind": "refund", "amountMinor": 100, "refundsExternalId": "ch1", "currency": "USD"},
            "currency",
        ),
        # revenue dated in the future
        ({"amountMinor": 100, "opportunityCrmId": "O1", "occurredAt": future}, "occurredAt"),
        # revenue dated before the referral existed
        (
            {
                "amountMinor": 100,
                "opportunityCrmId": "O1",
                "occurredAt": "2026-03-01T12:00:00+00:00",
            },
            "occurredAt",
        ),
        # no deal, no referral, no charge: no program to take a currency from
        ({"amountMinor": 100, "referralId": None}, "opportunityCrmId"),
    ]
    for i, (fields, field) in enumerate(bad):
        out = await record(client, key, externalId=f"bad{i}", **fields)
        assert (out["revenueEvent"], [e["field"] for e in out["errors"]]) == (None, [field]), fields
    assert await events(session) == 1

    o1 = await session.scalar(select(Opportunity.id).where(Opportunity.crm_id == "O1"))
    # A refund named by its charge needs nothing more: deal and currency come from the charge.
    partial = await record(
        client, key, externalId="re1", kind="refund", amountMinor=4_000, refundsExternalId="ch1"
    )
    assert partial == {
        "revenueEvent": {
            "externalId": "re1",
            "kind": "refund",
            "amountMinor": 4_000,
            "currency": "GBP",
            "opportunityId": encode_id("Opportunity", o1),
        },
        "errors": [],
    }
    # What is left of the charge: 6 000.
    over = await record(
        client, key, externalId="re2", kind="refund", amountMinor=6_001, refundsExternalId="ch1"
    )
    assert [e["field"] for e in over["errors"]] == ["amountMinor"]
    # No currency: the deal's (GBP); on a referral without a deal: the program's (EUR).
    on_deal = await record(client, key, externalId="ch2", amountMinor=500, opportunityCrmId="O2")
    assert on_deal["revenueEvent"]["currency"] == "GBP"
    direct = await record(
        client, key, externalId="ch3", amountMinor=500, referralId=encode_id("Referral", r1.id)
    )
    assert direct["revenueEvent"]["currency"] == "EUR"
    assert await events(session) == 4
