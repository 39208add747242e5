"""The baseline: the same query shape served by bare strawberry from memory (no database,
no auth), with the same parser and validation caches as Vouch. ``uvicorn bench.baseline:app``."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

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


# ---------------------------------------------------------------------------------------------
# The widget with the same work (``uvicorn bench.baseline:db_app``): bare strawberry doing what
# Vouch does for a widget load, hand-written: the bearer widget token verified (HMAC, as Vouch
# verifies it), the widget's one statement run on an asyncpg pool (Vouch's own SQL text,
# ``advocacy.widget._WIDGET``, so the two cannot drift), its rows mapped to the same shape (live
# links only; the next ask picked as Vouch picks it). No cost check, no per-field
# authorisation, no rate limit, no metrics: what is left of the ratio is their cost and
# Vouch's pipeline around the same read. The in-memory ``app`` above is kept: the issue's
# target is stated against it. ``uvicorn --factory bench.baseline:db_app``.


def db_app() -> GraphQL[Any, Any]:
    import asyncpg
    from starlette.requests import Request

    from vouch.advocacy.ask_policy import pick_next
    from vouch.advocacy.experiments import prompt_withheld_by
    from vouch.advocacy.widget import _WIDGET
    from vouch.attribution.links import _ADVOCATE_PART, _LINK_PART, _STATS_PART
    from vouch.core.security import WidgetTokens
    from vouch.core.snapshot import snapshot_class, snapshots_from_json
    from vouch.models import Advocate as AdvocateModel
    from vouch.models import Ask as AskModel
    from vouch.models import ReferralLink as LinkModel
    from vouch.models import Reward as RewardModel

    tokens = WidgetTokens(os.environ["VOUCH_SECRET_KEY"], 3600)
    base_url = os.environ.get("VOUCH_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    advocate_row, link_row = snapshot_class(AdvocateModel), snapshot_class(LinkModel)
    state: dict[str, Any] = {}

    async def init(conn: Any) -> None:
        # JSON decoded by the driver, as SQLAlchemy sets up Vouch's connections.
        for kind in ("json", "jsonb"):
            await conn.set_type_codec(
                kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )

    async def pool() -> Any:
        if "pool" not in state:
            dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
            state["pool"] = await asyncpg.create_pool(dsn, min_size=4, max_size=20, init=init)
        return state["pool"]

    @strawberry.type
    class DbQuery:
        @strawberry.field
        async def me(self, info: strawberry.Info) -> Me:
            request: Request = info.context["request"]
            header = request.headers.get("authorization", "")
            advocate_id = tokens.verify(header.removeprefix("Bearer ").strip())
            async with (await pool()).acquire() as conn:
                rows = await conn.fetch(
                    _WIDGET.sql,
                    *(
                        advocate_id if n == "advocate_id" else _WIDGET.bound[n]
                        for n in _WIDGET.names
                    ),
                )
            first = rows[0]
            advocate = advocate_row._make(first[_ADVOCATE_PART])
            links = []
            for row in rows:
                if row[_LINK_PART.start] is None:
                    continue
                link = link_row._make(row[_LINK_PART])
                if link.status == "revoked":
                    continue
                total, bots, _last, referrals, conversions = row[_STATS_PART]
                links.append(
                    WidgetLink(
                        code=link.code,
                        channel=link.channel,
                        share_url=f"{base_url}/r/{link.code}",
                        clicks=ClickSummary(total=total, humans=total - bots),
                        click_count=total - bots,
                        referral_count=referrals,
                        conversion_count=conversions,
                    )
                )
            referral_count, points, rewards, asks, holdout = first[_STATS_PART.stop :]
            ask = pick_next(snapshots_from_json(AskModel, asks))
            withheld = json.loads(holdout) if isinstance(holdout, str) else holdout
            prompt = prompt_withheld_by(*(withheld or (None, None)))
            return Me(
                external_id=advocate.external_id,
                first_name=advocate.first_name,
                referral_count=referral_count,
                points=points,
                links=links,
                rewards=[
                    WidgetReward(
                        amount_minor=r.amount_minor, currency=r.currency, state=r.state, kind=r.kind
                    )
                    for r in snapshots_from_json(RewardModel, rewards)
                ],
                next_ask=WidgetAsk(type=ask.type, moment=ask.moment, status=ask.status)
                if ask
                else None,
                referral_prompt=ReferralPrompt(show=prompt.show, reason=prompt.reason),
            )

    db_schema = strawberry.Schema(
        query=DbQuery, extensions=[ParserCache(maxsize=512), ValidationCache(maxsize=512)]
    )
    return GraphQL(db_schema, graphql_ide=None)
