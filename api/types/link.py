from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Self, TypeVar

import strawberry

from vouch.api.context import Info
from vouch.api.ids import encode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.types.click import ClickSummaryType
from vouch.api.types.enums import LinkStatus
from vouch.api.types.node import Node
from vouch.api.types.program import ProgramType
from vouch.api.types.rows import RowBacked, computed_fields, later
from vouch.attribution.links import LinkStats
from vouch.attribution.referrals import ReferralFilter
from vouch.models import Referral
from vouch.models.snapshots import ReferralLinkSnapshot

if TYPE_CHECKING:
    from vouch.api.types.advocate import AdvocateType
    from vouch.api.types.referral import ReferralType

MAX_NESTED = 100
T = TypeVar("T")


@strawberry.type(
    name="ReferralLink", description="An advocate's share link for one program and channel."
)
class ReferralLinkType(Node, RowBacked):
    db_id: strawberry.Private[int]
    advocate_db_id: strawberry.Private[int]
    program_db_id: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    code: str = strawberry.field(description="The hashid code in the share URL (/r/{code}).")
    channel: str = strawberry.field(description="Where it is shared: direct, email, linkedin, ...")
    status: LinkStatus = strawberry.field(description="active, or revoked (no longer resolves).")
    created_at: datetime = strawberry.field(description="When the link was created (UTC).")
    revoked_at: datetime | None = strawberry.field(description="When it was revoked (UTC).")

    @strawberry.field(description="The full URL to share.")
    def share_url(self, info: Info) -> str:
        return f"{info.context.settings.public_base_url.rstrip('/')}/r/{self.code}"

    # Stats preloaded with the link (the widget's ``me`` reads them in the same statement);
    # otherwise each stats field loads them through the request's dataloader.
    _stats: strawberry.Private[LinkStats | None] = None

    @strawberry.field(description="Clicks on this link.")
    def clicks(self, info: Info) -> ClickSummaryType:
        return self._stat(info, lambda s: ClickSummaryType.from_summary(s.clicks))

    @strawberry.field(description="Human (non-bot) clicks on this link.")
    def click_count(self, info: Info) -> int:
        return self._stat(info, lambda s: s.clicks.humans)

    @strawberry.field(description="Referred people (signups/leads) attributed to this link.")
    def referral_count(self, info: Info) -> int:
        return self._stat(info, lambda s: s.referrals)

    @strawberry.field(description="Referrals from this link that converted (closed-won).")
    def conversion_count(self, info: Info) -> int:
        return self._stat(info, lambda s: s.conversions)

    def _stat(self, info: Info, pick: Callable[[LinkStats], T]) -> T:
        if self._stats is not None:
            return pick(self._stats)
        return later(self._load_stat(info, pick))

    async def _load_stat(self, info: Info, pick: Callable[[LinkStats], T]) -> T:
        return pick(await info.context.loaders.stats_of_link.load(self.db_id))

    @strawberry.field(description="The program the link belongs to.")
    async def program(self, info: Info) -> ProgramType:
        program = await info.context.loaders.program.load(self.program_db_id)
        assert program is not None  # a foreign key
        return ProgramType.from_model(program)

    @strawberry.field(description="The advocate who shares this link.")
    async def advocate(
        self, info: Info
    ) -> Annotated[AdvocateType, strawberry.lazy("vouch.api.types.advocate")]:
        from vouch.api.types.advocate import AdvocateType

        advocate = await info.context.loaders.advocate.load(self.advocate_db_id)
        assert advocate is not None
        return AdvocateType.from_model(advocate)

    @strawberry.field(
        description="Referrals through this link, newest first (a widget token: friends' "
        "contact details hidden)."
    )
    async def referrals(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Annotated[ReferralType, strawberry.lazy("vouch.api.types.referral")]]:
        from vouch.api.types.referral import nested_referrals

        args = page_args("ReferralLink.referrals", first, after, last, before)
        ctx = info.context

        async def latest(limit: int) -> list[Referral]:
            return await ctx.loaders.referrals_of_link(limit).load(self.db_id)  # type: ignore[no-any-return]

        async def count() -> int:
            return (await ctx.loaders.stats_of_link.load(self.db_id)).referrals  # type: ignore[no-any-return]

        flt = ReferralFilter(link_id=self.db_id)
        return await nested_referrals(info, args, flt, latest, count)

    @classmethod
    def from_model(cls, m: ReferralLinkSnapshot, stats: LinkStats | None = None) -> Self:
        """Fields are computed from ``m`` when first read (see ``api.types.rows``); ``stats``
        when they were loaded with the link."""
        return cls.lazy(_m=m, _stats=stats)


computed_fields(
    ReferralLinkType,
    {
        "db_id": lambda o: o._m.id,
        "advocate_db_id": lambda o: o._m.advocate_id,
        "program_db_id": lambda o: o._m.program_id,
        "id": lambda o: strawberry.ID(encode_id("ReferralLink", o._m.id)),
        "code": lambda o: o._m.code or "",
        "channel": lambda o: o._m.channel,
        "status": lambda o: LinkStatus(o._m.status),
        "created_at": lambda o: o._m.created_at,
        "revoked_at": lambda o: o._m.revoked_at,
    },
)
