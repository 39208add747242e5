from __future__ import annotations

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.reward import RewardType
from vouch.attribution import reward_fulfilment, rewards
from vouch.core.clock import utcnow
from vouch.models.enums import Scope


@strawberry.type(description="Result of approveReward.")
class ApproveRewardPayload:
    reward: RewardType | None = strawberry.field(description="The reward after approval.")
    errors: list[InputError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of fulfilReward.")
class FulfilRewardPayload:
    reward: RewardType | None = strawberry.field(description="The reward.")
    fulfilled: bool = strawberry.field(
        description="False when fulfilment was requested from an external system (cash, gift "
        "card, donation), which reports back with fulfilmentRef."
    )
    errors: list[InputError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of voidReward.")
class VoidRewardPayload:
    reward: RewardType | None = strawberry.field(description="The voided reward.")
    errors: list[InputError] = strawberry.field(description="Why nothing changed.")


@strawberry.type
class RewardMutations:
    @strawberry.mutation(
        description="Approve a pending reward (admin). Refused (CONFLICT) while its referral "
        "awaits moderation, and before the end of its holding period (the message gives the "
        "date it becomes approvable)."
    )
    @transaction(lambda exc: ApproveRewardPayload(reward=None, errors=user_errors(exc)))
    async def approve_reward(
        self, info: Info, reward_id: strawberry.ID, reason: str | None = None
    ) -> ApproveRewardPayload:
        principal = require_scope(info.context, Scope.ADMIN)

        reward = await rewards.approve_reward(
            info.context.session,
            decode_id(reward_id, "Reward", field="rewardId"),
            actor=principal.actor,
            reason=reason,
            now=utcnow(),
        )
        return ApproveRewardPayload(reward=RewardType.from_model(reward), errors=[])

    @strawberry.mutation(
        description="Fulfil an approved reward through its kind's fulfiller (admin), or report "
        "an external payout done by giving fulfilmentRef (write scope suffices). The same "
        "fulfilmentRef again replays the first answer; another fulfilmentRef for a fulfilled "
        "reward is a CONFLICT and records nothing."
    )
    @transaction(
        lambda exc: FulfilRewardPayload(reward=None, fulfilled=False, errors=user_errors(exc))
    )
    async def fulfil_reward(
        self, info: Info, reward_id: strawberry.ID, fulfilment_ref: str | None = None
    ) -> FulfilRewardPayload:
        principal = require_scope(
            info.context, Scope.WRITE if fulfilment_ref is not None else Scope.ADMIN
        )

        result = await reward_fulfilment.fulfil_reward(
            info.context.session,
            decode_id(reward_id, "Reward", field="rewardId"),
            actor=principal.actor,
            now=utcnow(),
            fulfilment_ref=fulfilment_ref,
        )
        return FulfilRewardPayload(
            reward=RewardType.from_model(result[0]), fulfilled=result[1], errors=[]
        )

    @strawberry.mutation(
        description="Void a reward with a reason (admin); a fulfilled one only inside its "
        "clawback window."
    )
    @transaction(lambda exc: VoidRewardPayload(reward=None, errors=user_errors(exc)))
    async def void_reward(
        self, info: Info, reward_id: strawberry.ID, reason: str
    ) -> VoidRewardPayload:
        principal = require_scope(info.context, Scope.ADMIN)

        reward = await rewards.void_reward(
            info.context.session,
            decode_id(reward_id, "Reward", field="rewardId"),
            actor=principal.actor,
            reason=reason,
            now=utcnow(),
        )
        return VoidRewardPayload(reward=RewardType.from_model(reward), errors=[])
