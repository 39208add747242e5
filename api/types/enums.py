"""The domain's closed vocabularies as GraphQL enums: an unknown value is a validation error."""

from __future__ import annotations

from enum import Enum

import strawberry

from vouch.models.enums import (
    AskStatus,
    AskType,
    AttributionModel,
    FulfilledOnReattribution,
    LinkStatus,
    ModerationState,
    OfferKind,
    ProgramStatus,
    ReferralSource,
    ReferralStatus,
    RewardCalc,
    RewardKind,
    RewardSide,
    RewardTrigger,
    SignalKind,
    Team,
)

strawberry.enum(ProgramStatus, description="Lifecycle of a program.")
strawberry.enum(AttributionModel, description="Which link wins when a friend used several.")
strawberry.enum(OfferKind, description="What the referred friend is offered.")
strawberry.enum(LinkStatus, description="Whether a referral link still resolves.")
strawberry.enum(ReferralStatus, description="Where a referral is in the funnel.")
strawberry.enum(ModerationState, description="Fraud review state of a referral.")
strawberry.enum(ReferralSource, description="How the referral reached Vouch.")
strawberry.enum(RewardSide, description="Who a reward rule pays: the advocate or the friend.")
strawberry.enum(RewardTrigger, description="The referral event that earns a reward.")
strawberry.enum(RewardCalc, description="A fixed amount, or a share of revenue.")
strawberry.enum(RewardKind, description="The form a reward takes.")
strawberry.enum(AskType, description="What an ask requests of an advocate.")
strawberry.enum(AskStatus, description="Where an ask is in its lifecycle.")
strawberry.enum(Team, description="The team an ask comes from.")
strawberry.enum(SignalKind, description="What kind of fact a signal records.")
strawberry.enum(
    FulfilledOnReattribution,
    description="What re-attribution does to the previous advocate's fulfilled rewards: "
    "claw_back voids them (inside their clawback window; after it they are held), "
    "hold_for_review keeps them fulfilled and flags them with a review reason.",
)


@strawberry.enum(description="Order of a list, by creation.")
class ListOrder(Enum):
    OLDEST_FIRST = "oldest_first"
    NEWEST_FIRST = "newest_first"


__all__ = [
    "AskStatus",
    "AskType",
    "AttributionModel",
    "FulfilledOnReattribution",
    "LinkStatus",
    "ListOrder",
    "ModerationState",
    "OfferKind",
    "ProgramStatus",
    "ReferralSource",
    "ReferralStatus",
    "RewardCalc",
    "RewardKind",
    "RewardSide",
    "RewardTrigger",
    "SignalKind",
    "Team",
]
