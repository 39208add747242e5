from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from vouch.advocacy.ask_policy import pick_next
from vouch.advocacy.experiments import ReferralPrompt, referral_prompt
from vouch.api.context import Info
from vouch.api.ids import encode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import require_scope
from vouch.api.types.ask import AskType
from vouch.api.types.click import ClickSummaryType
from vouch.api.types.experiment import ReferralPromptType
from vouch.api.types.gamification import BadgeType
from vouch.api.types.link import ReferralLinkType
from vouch.api.types.node import Node
from vouch.api.types.referral import ReferralType, nested_referrals
from vouch.api.types.reward import RewardType
from vouch.api.types.rows import RowBacked, computed_fields, later
from vouch.api.types.signal import SignalType
from vouch.attribution.referrals import ReferralFilter
from vouch.models import Ask, Referral, Reward
from vouch.models.enums import Scope
from vouch.models.snapshots import AdvocateSnapshot, AskSnapshot, RewardSnapshot


@strawberry.type(name="Advocate", description="A customer contact who may advocate and share.")
class AdvocateType(Node, RowBacked):
    db_id: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    external_id: str = strawberry.field(description="The CRM's id for this contact.")
    email: str | None = strawberry.field(description="Email; null once erased.")
    first_name: str | None = strawberry.field(description="First name.")
    last_name: str | None = strawberry.field(description="Last name.")
    account_id: str | None = strawberry.field(description="The CRM account this contact is in.")
    account_name: str | None = strawberry.field(description="The account's name.")
    account_domain: str | None = strawberry.field(description="The account's web domain.")
    persona: str | None = strawberry.field(description="Persona, e.g. champion, admin, exec.")
    segment: str | None = strawberry.field(description="Customer segment.")
    is_icp: bool = strawberry.field(description="In the ideal customer profile.")
    consent_referral: bool = strawberry.field(description="Agreed to take part in referrals.")
    consent_marketing: bool = strawberry.field(description="Agreed to marketing asks.")
    tier: int | None = strawberry.field(description="Advocacy tier 1 (top) to 3; null if none.")
    score: float = strawberry.field(description="Readiness score, 0-100.")
    erased: bool = strawberry.field(description="Personal data has been erased.")
    created_at: datetime = strawberry.field(description="When the advocate was created (UTC).")
    updated_at: datetime = strawberry.field(description="When the advocate last changed (UTC).")

    # Links (with their stats) preloaded with the advocate, as the widget's ``me`` reads them.
    _links: strawberry.Private[list[ReferralLinkType] | None] = None

    @strawberry.field(description="The advocate's share links, oldest first.")
    def links(self, info: Info) -> list[ReferralLinkType]:
        if self._links is not None:
            return self._links
        return later(self._load_links(info))

    async def _load_links(self, info: Info) -> list[ReferralLinkType]:
        rows = await info.context.loaders.links_of_advocate.load(self.db_id)
        return [ReferralLinkType.from_model(r) for r in rows]

    @strawberry.field(description="Clicks over all of the advocate's links.")
    async def clicks(self, info: Info) -> ClickSummaryType:
        summary = await info.context.loaders.clicks_of_advocate.load(self.db_id)
        return ClickSummaryType.from_summary(summary)

    # Figures preloaded with the advocate (the widget's ``me`` reads them in one statement).
    _referral_count: strawberry.Private[int | None] = None
    _points: strawberry.Private[int | None] = None
    _rewards: strawberry.Private[list[Reward] | None] = None
    _open_asks: strawberry.Private[list[Ask] | None] = None
    _referral_prompt: strawberry.Private[ReferralPrompt | None] = None

    @strawberry.field(description="How many people the advocate has referred.")
    def referral_count(self, info: Info) -> int:
        if self._referral_count is not None:
            return self._referral_count
        return later(self._load_referral_count(info))

    async def _load_referral_count(self, info: Info) -> int:
        return int(await info.context.loaders.referral_count_of_advocate.load(self.db_id))

    @strawberry.field(
        description="The advocate's referrals, newest first (a widget token: friends' contact "
        "details hidden). A first page is batched over the advocates of a list; a page after "
        "a cursor costs two statements per advocate."
    )
    async def referrals(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ReferralType]:
        args = page_args("Advocate.referrals", first, after, last, before)
        ctx = info.context

        async def latest(limit: int) -> list[Referral]:
            return await ctx.loaders.referrals_of_advocate(limit).load(self.db_id)  # type: ignore[no-any-return]

        async def count() -> int:
            return int(await ctx.loaders.referral_count_of_advocate.load(self.db_id))

        flt = ReferralFilter(advocate_id=self.db_id)
        return await nested_referrals(info, args, flt, latest, count)

    @strawberry.field(
        description="The advocate's 100 most recent rewards, oldest first, with their state; "
        "all of them: `rewards(filter: {advocateId})`."
    )
    def rewards(self, info: Info) -> list[RewardType]:
        if self._rewards is not None:
            return [RewardType.from_model(r) for r in self._rewards]
        return later(self._load_rewards(info))

    async def _load_rewards(self, info: Info) -> list[RewardType]:
        rows = await info.context.loaders.rewards_of_advocate.load(self.db_id)
        return [RewardType.from_model(r) for r in rows]

    @strawberry.field(
        description="The ask to show next: one awaiting an answer, else the best queued one."
    )
    def next_ask(self, info: Info) -> AskType | None:
        if self._open_asks is not None:
            ask = pick_next(self._open_asks)
            return AskType.from_model(ask) if ask is not None else None
        return later(self._load_next_ask(info))

    async def _load_next_ask(self, info: Info) -> AskType | None:
        ask = pick_next(await info.context.loaders.open_asks_of_advocate.load(self.db_id))
        return AskType.from_model(ask) if ask is not None else None

    @strawberry.field(description="Total advocacy points.")
    def points(self, info: Info) -> int:
        if self._points is not None:
            return self._points
        return later(self._load_points(info))

    async def _load_points(self, info: Info) -> int:
        return await info.context.loaders.points_of_advocate.load(self.db_id)

    @strawberry.field(description="Badges earned for milestones.")
    async def badges(self, info: Info) -> list[BadgeType]:
        rows = await info.context.loaders.badges_of_advocate.load(self.db_id)
        return [BadgeType.from_model(b) for b in rows]

    @strawberry.field(
        description="Whether the widget should show the referral call to action, and why not "
        "(hidden for the holdout of a running experiment that withholds it)."
    )
    async def referral_prompt(self, info: Info) -> ReferralPromptType:
        if self._referral_prompt is not None:
            return ReferralPromptType.from_domain(self._referral_prompt)
        return ReferralPromptType.from_domain(
            await referral_prompt(info.context.session, self.db_id)
        )

    @strawberry.field(
        description="The 20 latest asks, newest first (API keys only; widgets see `nextAsk`)."
    )
    async def asks(self, info: Info) -> list[AskType]:
        require_scope(info.context, Scope.READ)
        rows = await info.context.loaders.asks_of_advocate.load(self.db_id)
        return [AskType.from_model(a) for a in rows]

    @strawberry.field(
        description="The 50 latest signals, newest first (API keys only: they are internal)."
    )
    async def signals(self, info: Info) -> list[SignalType]:
        require_scope(info.context, Scope.READ)
        rows = await info.context.loaders.signals_of_advocate.load(self.db_id)
        return [SignalType.from_model(s) for s in rows]

    @classmethod
    def from_model(
        cls,
        m: AdvocateSnapshot,
        links: list[ReferralLinkType] | None = None,
        *,
        referral_count: int | None = None,
        points: int | None = None,
        rewards: list[RewardSnapshot] | None = None,
        open_asks: list[AskSnapshot] | None = None,
        referral_prompt: ReferralPrompt | None = None,
    ) -> Self:
        """Fields are computed from ``m`` when first read (see ``api.types.rows``); ``links``,
        ``referral_count``, ``points``, ``rewards`` and ``open_asks`` (the next ask is picked
        from them) when they were loaded with the advocate."""
        return cls.lazy(
            _m=m,
            _links=links,
            _referral_count=referral_count,
            _points=points,
            _rewards=rewards,
            _open_asks=open_asks,
            _referral_prompt=referral_prompt,
        )


computed_fields(
    AdvocateType,
    {
        "db_id": lambda o: o._m.id,
        "id": lambda o: strawberry.ID(encode_id("Advocate", o._m.id)),
        "external_id": lambda o: o._m.external_id,
        "email": lambda o: o._m.email,
        "first_name": lambda o: o._m.first_name,
        "last_name": lambda o: o._m.last_name,
        "account_id": lambda o: o._m.account_id,
        "account_name": lambda o: o._m.account_name,
        "account_domain": lambda o: o._m.account_domain,
        "persona": lambda o: o._m.persona,
        "segment": lambda o: o._m.segment,
        "is_icp": lambda o: o._m.is_icp,
        "consent_referral": lambda o: o._m.consent_referral,
        "consent_marketing": lambda o: o._m.consent_marketing,
        "tier": lambda o: o._m.tier,
        "created_at": lambda o: o._m.created_at,
        "updated_at": lambda o: o._m.updated_at,
        "score": lambda o: round(o._m.score, 2),
        "erased": lambda o: o._m.erased_at is not None,
    },
)
