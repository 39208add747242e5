"""The native integrations' tests: an app configured with each provider's secrets, local HTTP
servers standing in for HubSpot's and Stripe's APIs, and a demo referral made the way a friend
makes one (the landing page's claim form)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.integrations.fake_http import FakeServer
from tests.web.conftest import Setup, claim, make_setup
from vouch.core.settings import Settings
from vouch.models import OfferRedemption, Referral
from vouch.web.app import Overrides, create_app

HUBSPOT_CLIENT_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
HUBSPOT_TOKEN = "pat-eu1-00000000-0000-0000-0000-000000000000"
SALESFORCE_TOKEN = "0123456789abcdef0123456789abcdef0123abcd"
SALESFORCE_ORG = "00D5g000004XyZ1EAK"
STRIPE_SECRET = "whsec_test_stripe_endpoint_secret"
STRIPE_KEY = "sk_test_vouch"


@pytest.fixture
def stripe_api() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def hubspot_api() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def integration_settings(
    settings: Settings, stripe_api: FakeServer, hubspot_api: FakeServer
) -> Settings:
    return settings.model_copy(
        update={
            "hubspot_client_secret": HUBSPOT_CLIENT_SECRET,
            "hubspot_access_token": HUBSPOT_TOKEN,
            "hubspot_api_base": hubspot_api.url(),
            "salesforce_outbound_token": SALESFORCE_TOKEN,
            "salesforce_org_ids": [SALESFORCE_ORG],
            "stripe_webhook_secret": STRIPE_SECRET,
            "stripe_api_key": STRIPE_KEY,
            "stripe_api_base": stripe_api.url(),
        }
    )


@pytest.fixture
def app(integration_settings: Settings, sessionmaker: Any) -> Any:
    return create_app(integration_settings, Overrides(sessionmaker=sessionmaker))


@dataclass
class Friend:
    setup: Setup
    referral: Referral
    code: str  # the friend's redemption code


async def make_friend(
    client: httpx.AsyncClient, session: AsyncSession, codec: Any, email: str
) -> Friend:
    setup = await make_setup(session, codec)
    response = await claim(client, setup.code, email=email)
    assert response.status_code in (200, 303), response.text
    referral = await session.scalar(select(Referral).where(Referral.email == email))
    assert referral is not None
    code = await session.scalar(
        select(OfferRedemption.code).where(OfferRedemption.referral_id == referral.id)
    )
    assert code is not None
    return Friend(setup=setup, referral=referral, code=code)
