"""The baseline: the same query shape served by bare strawberry from memory (no database,
no auth), with the same parser and validation caches as Vouch. ``uvicorn bench.baseline:app``."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache

NOW = datetime(2026, 11, 22, tzinfo=UTC)


@strawberry.type
class Advocate:
    external_id: str
    email: str | None


@strawberry.type
class Link:
    code: str
    channel: str


@strawberry.type
class Redemption:
    code: str | None
    redeemed: bool


@strawberry.type
class Reward:
    side: str
    state: str
    amount_minor: int
    currency: str


@strawberry.type
class Referral:
    id: strawberry.ID
    status: str
    created_at: datetime
    advocate: Advocate
    link: Link | None
    offer_redemption: Redemption | None
    rewards: list[Reward]


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class ReferralConnection:
    total_count: int
    page_info: PageInfo
    nodes: list[Referral]


@strawberry.type
class ClickSummary:
    total: int
    humans: int


@strawberry.type
class WidgetLink:
    code: str
    channel: str
    share_url: str
    clicks: ClickSummary
    click_count: int
    referral_count: int
    conversion_count: int


@strawberry.type
class WidgetReward:
    amount_minor: int
    currency: str
    state: str
    kind: str


@strawberry.type
class WidgetAsk:
    type: str
    moment: str
    status: str


@strawberry.type
class ReferralPrompt:
    show: bool
    reason: str | None


@strawberry.type
class Me:
    external_id: str
    first_name: str | None
    referral_count: int
    points: int
    links: list[WidgetLink]
    rewards: list[WidgetReward]
    next_ask: WidgetAsk | None
    referral_prompt: ReferralPrompt


REFERRALS = [
    Referral(
        id=strawberry.ID(f"UmVmZXJyYWw6{i}"),
        status="LEAD",
        created_at=NOW,
        advocate=Advocate(external_id=f"ext-{i}", email=f"a{i}@example.com"),
        link=Link(code=f"code{i:06d}", channel="direct"),
        offer_redemption=Redemption(code=f"OFFER{i}", redeemed=False) if i % 2 else None,
        rewards=[
            Reward(side="referrer", state="pending", amount_minor=5000, currency="USD"),
            Reward(side="referred", state="approved", amount_minor=2000, currency="USD"),
        ],
    )
    for i in range(200)
]
ME = Me(
    external_id="ext-1",
    first_name="Ada",
    referral_count=1,
    points=0,
    links=[
        WidgetLink(
            code="code000001",
            channel="direct",
            share_url="http://127.0.0.1/r/code000001",
            clicks=ClickSummary(total=12, humans=10),
            click_count=10,
            referral_count=3,
            conversion_count=1,
        )
    ],
    rewards=[WidgetReward(amount_minor=5000, currency="USD", state="pending", kind="credit")],
    next_ask=None,
    referral_prompt=ReferralPrompt(show=True, reason=None),
)


@strawberry.type
class Query:
    @strawberry.field
    def referrals(self, first: int = 20) -> ReferralConnection:
        return ReferralConnection(
            total_count=len(REFERRALS),
            page_info=PageInfo(has_next_page=True, end_cursor="Yzo1MA"),
            nodes=REFERRALS[:first],
        )

    @strawberry.field
    def me(self) -> Me:
        return ME


schema = strawberry.Schema(
    query=Query, extensions=[ParserCache(maxsize=512), ValidationCache(maxsize=512)]
)
app = GraphQL(schema, graphql_ide=None)
