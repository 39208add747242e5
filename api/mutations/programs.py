from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.enums import (
    AttributionModel,
    FulfilledOnReattribution,
    OfferKind,
    ProgramStatus,
    RewardCalc,
    RewardKind,
    RewardSide,
    RewardTrigger,
)
from vouch.api.types.program import ProgramType
from vouch.catalog.programs import (
    ProgramChanges,
    RuleSpec,
    create_program,
    set_program_status,
    set_reward_rules,
    update_program,
)
from vouch.models import Program
from vouch.models.enums import Scope

T = TypeVar("T")


def _opt(value: T | None) -> T | None:
    """Omitted (UNSET) and null both mean 'leave as is' for program settings."""
    return None if value is strawberry.UNSET else value


@strawberry.input(description="The referred friend's offer; omitted fields stay as they are.")
class OfferInput:
    kind: OfferKind | None = strawberry.field(default=strawberry.UNSET, description="Offer kind.")
    value: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="Percent (1-100) for percent_off, minor units for amount_off/credit, days "
        "for trial extensions.",
    )
    title: str | None = strawberry.field(
        default=strawberry.UNSET, description="The offer as the friend sees it."
    )
    terms: str | None = strawberry.field(default=strawberry.UNSET, description="The terms.")
    expires_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="When the offer ends (with time zone)."
    )
    redemption_ttl_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="Days an issued redemption code stays valid."
    )


@strawberry.input(description="Program settings; omitted fields keep their current value.")
class ProgramSettingsInput:
    name: str | None = strawberry.field(default=strawberry.UNSET, description="Display name.")
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="What the program is about."
    )
    currency: str | None = strawberry.field(
        default=strawberry.UNSET, description="ISO-4217 currency, e.g. USD."
    )
    attribution_window_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="1 to 365 days."
    )
    attribution_model: AttributionModel | None = strawberry.field(
        default=strawberry.UNSET, description="first_touch or last_touch."
    )
    require_tracking_consent: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Set no attribution cookie before consent."
    )
    frequency_cap_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="Ask frequency window, 1 to 365 days."
    )
    frequency_cap_count: int | None = strawberry.field(
        default=strawberry.UNSET, description="Automated asks per window, 1 to 10."
    )
    tier1_cap_count: int | None = strawberry.field(
        default=strawberry.UNSET, description="Asks per window for opted-in Tier 1, 1 to 10."
    )
    offer: OfferInput | None = strawberry.field(
        default=strawberry.UNSET, description="The referred-side offer."
    )
    auto_approve_rewards: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="Approve rewards without an admin: at once, or when the rule's holding "
        "period ends (`vouch rewards release` and the scheduler approve those).",
    )
    fulfilled_on_reattribution: FulfilledOnReattribution | None = strawberry.field(
        default=strawberry.UNSET,
        description="On re-attribution, claw back the previous advocate's fulfilled rewards "
        "(inside their clawback window) or hold them for review (default).",
    )

    preview_image_url: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The image share links unfurl with (og:image): an absolute https:// URL, "
        "ideally 1200×630; an empty string goes back to the generated offer card.",
    )

    def to_domain(self) -> ProgramChanges:
        offer = self.offer if isinstance(self.offer, OfferInput) else OfferInput()
        return ProgramChanges(
            name=_opt(self.name),
            description=_opt(self.description),
            currency=_opt(self.currency),
            attribution_window_days=_opt(self.attribution_window_days),
            attribution_model=_opt(self.attribution_model),
            require_tracking_consent=_opt(self.require_tracking_consent),
            frequency_cap_days=_opt(self.frequency_cap_days),
            frequency_cap_count=_opt(self.frequency_cap_count),
            tier1_cap_count=_opt(self.tier1_cap_count),
            offer_kind=_opt(offer.kind),
            offer_value=_opt(offer.value),
            offer_title=_opt(offer.title),
            offer_terms=_opt(offer.terms),
            offer_expires_at=_opt(offer.expires_at),
            redemption_ttl_days=_opt(offer.redemption_ttl_days),
            auto_approve_rewards=_opt(self.auto_approve_rewards),
            fulfilled_on_reattribution=_opt(self.fulfilled_on_reattribution),
            preview_image_url=_opt(self.preview_image_url),
        )


@strawberry.input(description="A new program.")
class CreateProgramInput(ProgramSettingsInput):
    slug: str = strawberry.field(description="URL-safe unique name, e.g. 'customer-referrals'.")
    status: ProgramStatus = strawberry.field(
        default=ProgramStatus.ACTIVE, description="draft or active (default)."
    )


@strawberry.input(description="A reward rule, matched to existing rules by name.")
class RewardRuleInput:
    name: str = strawberry.field(description="Unique name within the program.")
    side: RewardSide = strawberry.field(description="referrer (the advocate) or referred.")
    trigger: RewardTrigger = strawberry.field(description="signup, qualified, won or revenue.")
    kind: RewardKind = strawberry.field(default=RewardKind.CREDIT, description="Reward form.")
    calc: RewardCalc = strawberry.field(
        default=RewardCalc.FIXED, description="fixed amount or percent of revenue."
    )
    amount_minor: int = strawberry.field(default=0, description="Amount in minor units, >= 0.")
    currency: str | None = strawberry.field(
        default=None, description="ISO-4217; defaults to the program's currency."
    )
    percent_bps: int = strawberry.field(
        default=0, description="For percent rules: 1 to 10000 basis points."
    )
    points: int = strawberry.field(default=0, description="Points for points rewards.")
    from_nth_referral: int = strawberry.field(
        default=1, description="Applies from the advocate's Nth successful referral."
    )
    cap_count: int | None = strawberry.field(
        default=None, description="Max rewards per advocate per period; null = no cap."
    )
    cap_period_days: int = strawberry.field(default=365, description="Cap period in days.")
    clawback_days: int = strawberry.field(default=60, description="Clawback window in days.")
    holding_days: int = strawberry.field(
        default=0,
        description="Holding period, 0 to 365 days: rewards stay pending (approving is "
        "refused) until it ends; a refund or churn inside it voids them.",
    )

    def to_domain(self) -> RuleSpec:
        return RuleSpec(
            name=self.name,
            side=self.side,
            trigger=self.trigger,
            kind=self.kind,
            calc=self.calc,
            amount_minor=self.amount_minor,
            currency=self.currency,
            percent_bps=self.percent_bps,
            points=self.points,
            from_nth_referral=self.from_nth_referral,
            cap_count=self.cap_count,
            cap_period_days=self.cap_period_days,
            clawback_days=self.clawback_days,
            holding_days=self.holding_days,
        )


def _program(p: Program | None) -> ProgramType | None:
    return ProgramType.from_model(p) if p is not None else None


@strawberry.type(description="Result of createProgram.")
class CreateProgramPayload:
    program: ProgramType | None = strawberry.field(description="The new program.")
    errors: list[InputError] = strawberry.field(description="Why nothing was created.")


@strawberry.type(description="Result of updateProgram.")
class UpdateProgramPayload:
    program: ProgramType | None = strawberry.field(description="The program as it is now.")
    errors: list[InputError] = strawberry.field(description="Why nothing was changed.")


@strawberry.type(description="Result of pauseProgram.")
class PauseProgramPayload:
    program: ProgramType | None = strawberry.field(description="The paused program.")
    errors: list[InputError] = strawberry.field(description="Why it was not paused.")


@strawberry.type(description="Result of activateProgram.")
class ActivateProgramPayload:
    program: ProgramType | None = strawberry.field(description="The active program.")
    errors: list[InputError] = strawberry.field(description="Why it was not activated.")


@strawberry.type(description="Result of setRewardRules.")
class SetRewardRulesPayload:
    program: ProgramType | None = strawberry.field(
        description="The program with its rules and (possibly bumped) rulesVersion."
    )
    changed: bool = strawberry.field(description="Whether the rules differed from before.")
    errors: list[InputError] = strawberry.field(description="Why nothing was changed.")


@strawberry.type
class ProgramMutations:
    @strawberry.mutation(description="Create a program with its offer (admin scope).")
    @transaction(lambda exc: CreateProgramPayload(program=None, errors=user_errors(exc)))
    async def create_program(self, info: Info, input: CreateProgramInput) -> CreateProgramPayload:
        require_scope(info.context, Scope.ADMIN)

        program = await create_program(
            info.context.session,
            slug=input.slug,
            status=input.status,
            changes=input.to_domain(),
        )
        return CreateProgramPayload(program=_program(program), errors=[])

    @strawberry.mutation(description="Change a program's settings or offer (admin scope).")
    @transaction(lambda exc: UpdateProgramPayload(program=None, errors=user_errors(exc)))
    async def update_program(
        self, info: Info, id: strawberry.ID, input: ProgramSettingsInput
    ) -> UpdateProgramPayload:
        require_scope(info.context, Scope.ADMIN)

        program = await update_program(
            info.context.session, decode_id(id, "Program"), input.to_domain()
        )
        return UpdateProgramPayload(program=_program(program), errors=[])

    @strawberry.mutation(description="Pause a program: its links stop crediting (admin scope).")
    @transaction(lambda exc: PauseProgramPayload(program=None, errors=user_errors(exc)))
    async def pause_program(self, info: Info, id: strawberry.ID) -> PauseProgramPayload:
        require_scope(info.context, Scope.ADMIN)

        program = await set_program_status(
            info.context.session, decode_id(id, "Program"), ProgramStatus.PAUSED
        )
        return PauseProgramPayload(program=_program(program), errors=[])

    @strawberry.mutation(description="Activate a draft or paused program (admin scope).")
    @transaction(lambda exc: ActivateProgramPayload(program=None, errors=user_errors(exc)))
    async def activate_program(self, info: Info, id: strawberry.ID) -> ActivateProgramPayload:
        require_scope(info.context, Scope.ADMIN)

        program = await set_program_status(
            info.context.session, decode_id(id, "Program"), ProgramStatus.ACTIVE
        )
        return ActivateProgramPayload(program=_program(program), errors=[])

    @strawberry.mutation(
        description="Replace a program's reward rules (admin scope). Rules are matched by name; "
        "dropped rules are deactivated; any change bumps rulesVersion."
    )
    @transaction(
        lambda exc: SetRewardRulesPayload(program=None, changed=False, errors=user_errors(exc))
    )
    async def set_reward_rules(
        self, info: Info, program_id: strawberry.ID, rules: list[RewardRuleInput]
    ) -> SetRewardRulesPayload:
        require_scope(info.context, Scope.ADMIN)

        result = await set_reward_rules(
            info.context.session,
            decode_id(program_id, "Program", field="programId"),
            [rule.to_domain() for rule in rules],
        )
        return SetRewardRulesPayload(
            program=ProgramType.from_model(result[0]), changed=result[1], errors=[]
        )
