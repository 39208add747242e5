"""Every outbound event type has a JSON Schema in docs/webhooks/, and what Vouch sends matches
it; deliveries carry ``User-Agent: Vouch-Webhooks/<version>``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
from sqlalchemy import select

from tests.attribution.factories import at, make_referral, make_world
from tests.factories import make_reward_rule
from tests.integrations.fake_http import FakeServer
from vouch import __version__
from vouch.attribution import (
    moderation,
    opportunities,
    redemptions,
    revenue,
    reward_fulfilment,
    rewards,
    webhooks,
)
from vouch.attribution.egress import EgressPolicy
from vouch.attribution.opportunities import OpportunityData
from vouch.attribution.revenue import RevenueData
from vouch.attribution.webhooks import EndpointInput
from vouch.core.clock import utcnow
from vouch.models import OfferRedemption, OutboxEvent, Reward

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "webhooks"


def _schema(event_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{event_type}.schema.json").read_text())
    return schema


def test_every_event_type_has_a_valid_schema():
    files = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    assert files == set(webhooks.EVENT_TYPES)
    for event_type in webhooks.EVENT_TYPES:
        schema = _schema(event_type)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["properties"]["type"] == {"const": event_type}


def assert_outbox_matches_schemas(events: list[OutboxEvent]) -> set[str]:
    """Validate each event's body (as delivered) against its schema; the types seen."""
    for event in events:
        body = json.loads(webhooks.event_body(event))
        jsonschema.Draft202012Validator(
            _schema(event.event_type), format_checker=jsonschema.FormatChecker()
        ).validate(body)
    return {event.event_type for event in events}


async def test_every_event_type_sent_matches_its_schema(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, kind="cash", amount_minor=5000)
    await make_reward_rule(session, program=program, kind="credit", amount_minor=1000)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await moderation.flag_referral(session, referral, ["velocity"], now=at(1))
    await moderation.moderate_referral(
        session, referral.id, approve=True, reason="checked", actor="ops", now=at(1)
    )
    session.add(
        OfferRedemption(
            referral_id=referral.id, program_id=program.id, code="FRIEND-1", issued_at=at(1)
        )
    )
    await session.flush()
    await redemptions.redeem_offer(
        session, redemptions.validate_redeem("FRIEND-1", "checkout", "order-1"), now=at(2)
    )
    await redemptions.record_conversion(
        session,
        redemptions.validate_conversion(
            redemption_code="FRIEND-1",
            kind="purchase",
            external_ref="order-1",
            amount_minor=9900,
            currency="USD",
            occurred_at=at(2),
            now=utcnow(),
        ),
    )
    await opportunities.upsert_opportunity(
        session,
        OpportunityData(
            crm_id="D-1",
            stage="Won",
            amount_minor=9900,
            currency="USD",
            status="won",
            referral_id=referral.id,
        ),
        source="test",
        actor=None,
        now=at(3),
    )
    await revenue.record_revenue(
        session,
        RevenueData(
            external_id="in_1",
            kind="one_time",
            amount_minor=9900,
            currency="USD",
            occurred_at=at(3),
            referral_id=referral.id,
        ),
        source="test",
        actor=None,
        now=at(3),
    )
    cash, credit = list(
        await session.scalars(
            select(Reward).where(Reward.referral_id == referral.id).order_by(Reward.id)
        )
    )[:2]
    await rewards.approve_reward(session, cash.id, actor="ops", reason=None, now=at(4))
    await reward_fulfilment.fulfil_reward(session, cash.id, actor="ops", now=at(4))
    await reward_fulfilment.fulfil_reward(
        session, cash.id, actor="ops", now=at(5), fulfilment_ref="po_1"
    )
    await rewards.void_reward(session, credit.id, actor="ops", reason="duplicate", now=at(5))
    events = list(await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))
    # offer.code_resend_requested and reward.review_requested (added on main by issues 13/14)
    # are not driven here yet: their schemas are written from the payloads in claims.py and
    # rewards.py, and every schema is checked to be a valid one above
    assert assert_outbox_matches_schemas(events) == set(webhooks.EVENT_TYPES) - {
        "offer.code_resend_requested",
        "reward.review_requested",
    }


async def test_deliveries_say_who_sends_them(session):
    with FakeServer() as server:
        server.route("POST", "/hook", lambda request: (204, {}, b""))
        # the local receiver is a named private host, as a development receiver must be
        local = urlsplit(server.url("/hook")).hostname or ""
        await webhooks.create_endpoint(
            session,
            EndpointInput(url=server.url("/hook"), event_types=[]),
            allowed_private_hosts=[local],
        )
        await webhooks.enqueue(session, "referral.created", {"referral_id": 1}, now=utcnow())
        sender_policy = EgressPolicy.allowing([local])
        async with httpx.AsyncClient() as client:
            run = await webhooks.deliver_due(
                session, webhooks.httpx_sender(client, sender_policy), now=utcnow()
            )
    assert run.delivered == 1
    [request] = server.requests
    assert request.headers["user-agent"] == f"Vouch-Webhooks/{__version__}"
    assert request.headers["webhook-id"].startswith("msg_")
