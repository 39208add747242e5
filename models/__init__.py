"""SQLAlchemy 2 typed ORM models. Importing this package registers every table on ``Base``."""

from models.advocacy import ActionOpportunity, AdvocacyAction, AdvocateBadge, Ask, PointsEntry
from models.advocate import Advocate, AdvocateScore, Signal, TierEvent
from models.base import Base
from models.crm import Opportunity, OpportunityContact, OpportunityEvent, RevenueEvent
from models.platform import (
    ApiKey,
    IdempotencyKey,
    OutboxEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from models.program import Program, RewardRule
from models.ratelimit import RateLimitHit
from models.referral import (
    AttributionDecision,
    Click,
    ClickBatch,
    Conversion,
    OfferRedemption,
    Referral,
    ReferralEvent,
    ReferralLink,
    ShareEvent,
)
from models.reward import Reward, RewardEntry
from models.rollup import ProgramDailyRollup, ReferralDailyRollup

__all__ = [
    "ActionOpportunity",
    "AdvocacyAction",
    "Advocate",
    "AdvocateBadge",
    "AdvocateScore",
    "ApiKey",
    "Ask",
    "AttributionDecision",
    "Base",
    "Click",
    "ClickBatch",
    "Conversion",
    "IdempotencyKey",
    "OfferRedemption",
    "Opportunity",
    "OpportunityContact",
    "OpportunityEvent",
    "OutboxEvent",
    "PointsEntry",
    "Program",
    "ProgramDailyRollup",
    "RateLimitHit",
    "Referral",
    "ReferralDailyRollup",
    "ReferralEvent",
    "ReferralLink",
    "RevenueEvent",
    "Reward",
    "RewardEntry",
    "RewardRule",
    "ShareEvent",
    "Signal",
    "TierEvent",
    "WebhookDelivery",
    "WebhookEndpoint",
]
