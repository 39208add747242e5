"""SQLAlchemy 2 typed ORM models. Importing this package registers every table on ``Base``."""

from vouch.models.advocacy import ActionOpportunity, AdvocacyAction, AdvocateBadge, Ask, PointsEntry
from vouch.models.advocate import Advocate, AdvocateScore, Signal, TierEvent
from vouch.models.base import Base
from vouch.models.crm import Opportunity, OpportunityContact, OpportunityEvent, RevenueEvent
from vouch.models.experiment import Experiment, ExperimentAssignment
from vouch.models.integrations import ExternalRef, IntegrationEvent, IntegrationJob
from vouch.models.jobs import JobOutcome, JobRun
from vouch.models.platform import (
    ApiKey,
    ConsoleSession,
    IdempotencyKey,
    OutboxEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from vouch.models.program import Program, RewardRule
from vouch.models.ratelimit import RateLimitHit
from vouch.models.referral import (
    AttributionDecision,
    Click,
    ClickBatch,
    ClickMonthlyTotal,
    Conversion,
    OfferRedemption,
    Referral,
    ReferralEvent,
    ReferralLink,
    ShareEvent,
)
from vouch.models.reward import Reward, RewardEntry
from vouch.models.rollup import ProgramDailyRollup, ReferralDailyRollup

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
    "ClickMonthlyTotal",
    "ConsoleSession",
    "Conversion",
    "Experiment",
    "ExperimentAssignment",
    "ExternalRef",
    "IdempotencyKey",
    "IntegrationEvent",
    "IntegrationJob",
    "JobOutcome",
    "JobRun",
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
