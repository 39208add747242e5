from __future__ import annotations

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.ids import decode_id, encode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.chain import AttributionDecisionType, ReferralTransitionType
from vouch.attribution import chain, lifecycle, moderation
from vouch.core.clock import utcnow
from vouch.models.enums import Scope


@strawberry.type(description="Result of transitionReferral.")
class TransitionReferralPayload:
    referral_id: strawberry.ID | None = strawberry.field(description="The referral.")
    status: str | None = strawberry.field(description="Its status now.")
    transition: ReferralTransitionType | None = strawberry.field(
        description="The transition written; null when the referral already had that status."
    )
    errors: list[InputError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of moderateReferral.")
class ModerateReferralPayload:
    referral_id: strawberry.ID | None = strawberry.field(description="The referral.")
    status: str | None = strawberry.field(description="Its status now (rejected on reject).")
    moderation: str | None = strawberry.field(description="approved or rejected.")
    errors: list[InputError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of reattributeReferral.")
class ReattributeReferralPayload:
    decision: AttributionDecisionType | None = strawberry.field(
        description="The new current decision (the old one is kept, superseded)."
    )
    errors: list[InputError] = strawberry.field(description="Why nothing changed.")


@strawberry.type
class ReferralLifecycleMutations:
    @strawberry.mutation(
        description="Move a referral through lead → qualified → opportunity → won | lost, "
        "won → churned | refunded (write scope). Invalid moves are errors; repeating the "
        "current status changes nothing."
    )
    @transaction(
        lambda exc: TransitionReferralPayload(
            referral_id=None, status=None, transition=None, errors=user_errors(exc)
        )
    )
    async def transition_referral(
        self, info: Info, referral_id: strawberry.ID, status: str, reason: str | None = None
    ) -> TransitionReferralPayload:
        principal = require_scope(info.context, Scope.WRITE)

        result = await lifecycle.transition(
            info.context.session,
            decode_id(referral_id, "Referral", field="referralId"),
            status,
            source="api",
            actor=principal.actor,
            now=utcnow(),
            detail={"reason": reason[:500]} if reason else None,
        )
        return TransitionReferralPayload(
            referral_id=strawberry.ID(encode_id("Referral", result.referral.id)),
            status=result.referral.status,
            transition=ReferralTransitionType.from_model(result.event) if result.event else None,
            errors=[],
        )

    @strawberry.mutation(
        description="Approve or reject a flagged referral with a reason (admin). Rejecting "
        "voids its unfulfilled rewards."
    )
    @transaction(
        lambda exc: ModerateReferralPayload(
            referral_id=None, status=None, moderation=None, errors=user_errors(exc)
        )
    )
    async def moderate_referral(
        self, info: Info, referral_id: strawberry.ID, approve: bool, reason: str
    ) -> ModerateReferralPayload:
        principal = require_scope(info.context, Scope.ADMIN)

        result = await moderation.moderate_referral(
            info.context.session,
            decode_id(referral_id, "Referral", field="referralId"),
            approve=approve,
            reason=reason,
            actor=principal.actor,
            now=utcnow(),
        )
        return ModerateReferralPayload(
            referral_id=strawberry.ID(encode_id("Referral", result.referral.id)),
            status=result.referral.status,
            moderation=result.referral.moderation,
            errors=[],
        )

    @strawberry.mutation(
        description="Credit a referral to another link's advocate (admin). Writes a new "
        "decision superseding the current one; history is never edited. The credit moves: the "
        "previous advocate's unpaid rewards are voided ('re-attributed to another advocate'), "
        "paid ones are clawed back or held for review per the program's "
        "fulfilledOnReattribution, and the new advocate earns what the referral stands at on "
        "their own tier ladder and caps."
    )
    @transaction(lambda exc: ReattributeReferralPayload(decision=None, errors=user_errors(exc)))
    async def reattribute_referral(
        self,
        info: Info,
        referral_id: strawberry.ID,
        link_id: strawberry.ID,
        reason: str,
        evidence: str = "manual",
    ) -> ReattributeReferralPayload:
        principal = require_scope(info.context, Scope.ADMIN)

        decision = await chain.reattribute(
            info.context.session,
            decode_id(referral_id, "Referral", field="referralId"),
            link_id=decode_id(link_id, "ReferralLink", field="linkId"),
            evidence=evidence,
            actor=principal.actor,
            reason=reason,
            now=utcnow(),
        )
        return ReattributeReferralPayload(
            decision=AttributionDecisionType.from_model(decision) if decision else None,
            errors=[],
        )
