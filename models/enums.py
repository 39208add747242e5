"""Every closed vocabulary of the domain, in one place."""

from __future__ import annotations

from enum import StrEnum


class ProgramStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class AttributionModel(StrEnum):
    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"


class OfferKind(StrEnum):
    PERCENT_OFF = "percent_off"
    AMOUNT_OFF = "amount_off"
    TRIAL_EXTENSION_DAYS = "trial_extension_days"
    CREDIT = "credit"
    CUSTOM = "custom"


class SignalKind(StrEnum):
    NPS = "nps"
    CSAT = "csat"
    REVIEW_RATING = "review_rating"
    USAGE_MILESTONE = "usage_milestone"
    USAGE_DEPTH = "usage_depth"
    FIRST_VALUE = "first_value"
    KPI_MILESTONE = "kpi_milestone"
    RENEWAL = "renewal"
    RENEWAL_NEGOTIATION = "renewal_negotiation"
    EXPANSION = "expansion"
    PURCHASE = "purchase"
    SUPPORT_RESOLVED = "support_resolved"
    ESCALATION_OPENED = "escalation_opened"
    ESCALATION_CLOSED = "escalation_closed"
    ORGANIC_MENTION = "organic_mention"
    REFERRAL_MADE = "referral_made"
    QBR_REFERRAL_INTENT = "qbr_referral_intent"
    SENTIMENT = "sentiment"


class LinkStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class ReferralStatus(StrEnum):
    LEAD = "lead"
    QUALIFIED = "qualified"
    OPPORTUNITY = "opportunity"
    WON = "won"
    LOST = "lost"
    CHURNED = "churned"
    REFUNDED = "refunded"
    REJECTED = "rejected"


class ModerationState(StrEnum):
    CLEAR = "clear"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReferralSource(StrEnum):
    LANDING = "landing"
    CODE_ENTRY = "code_entry"
    API = "api"
    IMPORT = "import"
    CRM = "crm"


class AttributionEvidence(StrEnum):
    CLICK = "click"
    CODE_ENTRY = "code_entry"
    FORM = "form"
    API = "api"
    MANUAL = "manual"


class OpportunityKind(StrEnum):
    NEW_BUSINESS = "new_business"
    EXPANSION = "expansion"
    RENEWAL = "renewal"


class OpportunityStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class RevenueKind(StrEnum):
    ONE_TIME = "one_time"
    RECURRING = "recurring"
    REFUND = "refund"


class ConversionKind(StrEnum):
    SIGNUP = "signup"
    PURCHASE = "purchase"


class RewardSide(StrEnum):
    REFERRER = "referrer"
    REFERRED = "referred"


class FulfilledOnReattribution(StrEnum):
    """What re-attribution does to the previous advocate's already fulfilled rewards."""

    CLAW_BACK = "claw_back"
    HOLD_FOR_REVIEW = "hold_for_review"


class RewardTrigger(StrEnum):
    SIGNUP = "signup"
    QUALIFIED = "qualified"
    WON = "won"
    REVENUE = "revenue"


class RewardCalc(StrEnum):
    FIXED = "fixed"
    PERCENT = "percent"


class RewardKind(StrEnum):
    CREDIT = "credit"
    DISCOUNT_CODE = "discount_code"
    CASH = "cash"
    GIFT_CARD = "gift_card"
    POINTS = "points"
    DONATION = "donation"
    STATUS = "status"


class RewardState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    FULFILLED = "fulfilled"
    VOIDED = "voided"


class AskType(StrEnum):
    REVIEW = "review"
    TESTIMONIAL = "testimonial"
    CASE_STUDY = "case_study"
    ANONYMOUS_QUOTE = "anonymous_quote"
    REFERENCE_CALL = "reference_call"
    REFERRAL_INVITE = "referral_invite"
    SOCIAL_SHARE = "social_share"
    COMMUNITY_INVITE = "community_invite"
    SURVEY = "survey"


class AskStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    ACCEPTED = "accepted"
    PUBLISHED = "published"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Team(StrEnum):
    MARKETING = "marketing"
    SALES = "sales"
    CUSTOMER_SUCCESS = "customer_success"


class ActionKind(StrEnum):
    REVIEW = "review"
    TESTIMONIAL = "testimonial"
    CASE_STUDY = "case_study"
    QUOTE = "quote"
    REFERENCE = "reference"
    TALK = "talk"
    REFERRAL = "referral"
    SOCIAL_SHARE = "social_share"
    COMMUNITY = "community"
    SURVEY = "survey"


class ShareEventKind(StrEnum):
    PAGE_OPENED = "page_opened"
    LINK_COPIED = "link_copied"
    CHANNEL_CHOSEN = "channel_chosen"
    MESSAGE_EDITED = "message_edited"
    QR_SHOWN = "qr_shown"


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class ExperimentStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    ENDED = "ended"


class ExperimentGroup(StrEnum):
    TREATMENT = "treatment"
    HOLDOUT = "holdout"


class CrmProvider(StrEnum):
    """Where an opportunity's CRM id comes from; the id itself is stored as the CRM gives it."""

    HUBSPOT = "hubspot"
    SALESFORCE = "salesforce"
    OTHER = "other"


class IntegrationProvider(StrEnum):
    HUBSPOT = "hubspot"
    SALESFORCE = "salesforce"
    STRIPE = "stripe"


class IntegrationEventStatus(StrEnum):
    PROCESSED = "processed"  # applied in the transaction that recorded it
    QUEUED = "queued"  # a fetch from the provider's API is waiting in integration_jobs
    IGNORED = "ignored"  # a type or object Vouch does not use (kept so a retry is a no-op)
    FAILED = "failed"  # refused with a reason (kept, with the reason, so nothing is lost)


class IntegrationJobStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"
