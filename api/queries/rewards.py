from __future__ import annotations

import strawberry

from vouch.api.connections import to_connection
from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import require_advocate_access, require_scope
from vouch.api.types.reward import RewardTotalType, RewardType
from vouch.attribution import reward_reads
from vouch.attribution.reward_reads import RewardFilter
from vouch.models.enums import Scope


@strawberry.input(description="Filters for rewards; all optional, combined with AND.")
class RewardFilterInput:
    state: str | None = strawberry.field(
        default=None, description="pending, approved, fulfilled or voided."
    )
    advocate_id: strawberry.ID | None = strawberry.field(
        default=None, description="Rewards earned by this advocate."
    )
    program_id: strawberry.ID | None = strawberry.field(
        default=None, description="Rewards in this program."
    )
    referral_id: strawberry.ID | None = strawberry.field(
        default=None, description="Rewards earned through this referral."
    )

    def to_domain(self) -> RewardFilter:
        return RewardFilter(
            state=self.state,
            advocate_id=decode_id(self.advocate_id, "Advocate", field="filter.advocateId")
            if self.advocate_id
            else None,
            program_id=decode_id(self.program_id, "Program", field="filter.programId")
            if self.program_id
            else None,
            referral_id=decode_id(self.referral_id, "Referral", field="filter.referralId")
            if self.referral_id
            else None,
        )


def _authorise(info: Info, f: RewardFilter) -> None:
    """A read key sees all rewards; a widget token only its own advocate's."""
    if f.advocate_id is not None:
        require_advocate_access(info.context, f.advocate_id)
    else:
        require_scope(info.context, Scope.READ)


@strawberry.type
class RewardQueries:
    @strawberry.field(description="Rewards, newest first, filtered by state, advocate, program.")
    async def rewards(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: RewardFilterInput | None = None,
    ) -> Connection[RewardType]:
        f = (filter or RewardFilterInput()).to_domain()
        _authorise(info, f)
        args = page_args("rewards", first, after, last, before)
        page = await reward_reads.list_rewards(
            info.context.session,
            f,
            **args.window(),
        )
        return to_connection(page, RewardType.from_model, key=lambda r: r.id, args=args)

    @strawberry.field(description="Totals per state and currency over the filtered rewards.")
    async def reward_totals(
        self, info: Info, filter: RewardFilterInput | None = None
    ) -> list[RewardTotalType]:
        f = (filter or RewardFilterInput()).to_domain()
        _authorise(info, f)
        totals = await reward_reads.reward_totals(info.context.session, f)
        return [RewardTotalType.from_domain(t) for t in totals]

    @strawberry.field(description="One reward by id.")
    async def reward(self, info: Info, id: strawberry.ID) -> RewardType:
        require_scope(info.context, Scope.READ)
        return RewardType.from_model(
            await reward_reads.get_reward(info.context.session, decode_id(id, "Reward"))
        )
