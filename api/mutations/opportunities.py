from __future__ import annotations

from datetime import date

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.opportunity import OpportunityType
from vouch.attribution import opportunities
from vouch.attribution.opportunities import ContactData, OpportunityData
from vouch.core.clock import utcnow
from vouch.models.enums import Scope


@strawberry.input(description="A person on a deal.")
class OpportunityContactInput:
    email: str = strawberry.field(description="The contact's email.")
    role: str | None = strawberry.field(default=None, description="Role on the deal.")


@strawberry.input(description="A CRM deal, created or updated by its CRM id.")
class UpsertOpportunityInput:
    crm_id: str = strawberry.field(
        description="The CRM's id exactly as the CRM gives it; with `provider`, the upsert key."
    )
    provider: str = strawberry.field(
        default="other",
        description="Which CRM the id belongs to: hubspot, salesforce or other.",
    )
    stage: str = strawberry.field(description="The CRM stage name.")
    amount_minor: int = strawberry.field(description="Amount in minor units.")
    currency: str | None = strawberry.field(
        default=None,
        description="ISO-4217 currency; omitted: the deal's current one, else its referral's "
        "program's; refused for a new deal without a referral (never assumed USD).",
    )
    status: str = strawberry.field(default="open", description="open, won or lost.")
    kind: str = strawberry.field(
        default="new_business", description="new_business, expansion or renewal."
    )
    name: str | None = strawberry.field(default=None, description="Deal name.")
    referral_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The referral that sourced it; otherwise matched by contact emails.",
    )
    close_date: date | None = strawberry.field(default=None, description="Close date.")
    owner: str | None = strawberry.field(default=None, description="The CRM owner's id.")
    contacts: list[OpportunityContactInput] = strawberry.field(
        default_factory=list, description="People on the deal (at most 50)."
    )

    def to_domain(self) -> OpportunityData:
        return OpportunityData(
            provider=self.provider,
            crm_id=self.crm_id,
            stage=self.stage,
            amount_minor=self.amount_minor,
            currency=self.currency,
            status=self.status,
            kind=self.kind,
            name=self.name,
            referral_id=decode_id(self.referral_id, "Referral", field="referralId")
            if self.referral_id
            else None,
            close_date=self.close_date,
            owner=self.owner,
            contacts=[ContactData(email=c.email, role=c.role) for c in self.contacts],
        )


@strawberry.type(description="Result of upsertOpportunity.")
class UpsertOpportunityPayload:
    opportunity: OpportunityType | None = strawberry.field(description="The deal after the upsert.")
    created: bool = strawberry.field(
        description="The deal was new (a retry with the same idempotency key replays the first "
        "answer, so it stays true)."
    )
    errors: list[InputError] = strawberry.field(description="Why nothing was written.")


@strawberry.type(description="Result of moveOpportunityStage.")
class MoveOpportunityStagePayload:
    opportunity: OpportunityType | None = strawberry.field(description="The deal after the move.")
    errors: list[InputError] = strawberry.field(description="Why nothing was written.")


@strawberry.type
class OpportunityMutations:
    @strawberry.mutation(
        description="Create or update a deal by CRM id (write scope). Stage and amount changes "
        "are kept as history; won and lost new-business deals move the referral. Retries with "
        "the same idempotency key return the first answer."
    )
    @transaction(
        lambda exc: UpsertOpportunityPayload(
            opportunity=None, created=False, errors=user_errors(exc)
        )
    )
    async def upsert_opportunity(
        self, info: Info, input: UpsertOpportunityInput, idempotency_key: str | None = None
    ) -> UpsertOpportunityPayload:
        principal = require_scope(info.context, Scope.WRITE)

        result = await opportunities.upsert_opportunity(
            info.context.session,
            input.to_domain(),
            source="api",
            actor=principal.actor,
            now=utcnow(),
            idempotency_key=idempotency_key,
            idempotency_owner=principal.idempotency_owner,
        )
        return UpsertOpportunityPayload(
            opportunity=OpportunityType.from_model(result.opportunity),
            created=result.created,
            errors=[],
        )

    @strawberry.mutation(
        description="Move a deal to another stage (write scope). A deal reopened and won again "
        "earns its rewards again, once. Retries with the same idempotency key return the first "
        "answer; only the arguments sent are compared. `provider` (hubspot, salesforce or "
        "other) is needed only when two CRMs use the same id."
    )
    @transaction(lambda exc: MoveOpportunityStagePayload(opportunity=None, errors=user_errors(exc)))
    async def move_opportunity_stage(
        self,
        info: Info,
        crm_id: str,
        stage: str,
        status: str | None = None,
        amount_minor: int | None = None,
        idempotency_key: str | None = None,
        provider: str | None = None,
    ) -> MoveOpportunityStagePayload:
        principal = require_scope(info.context, Scope.WRITE)

        result = await opportunities.move_stage(
            info.context.session,
            crm_id,
            stage=stage,
            status=status,
            amount_minor=amount_minor,
            source="api",
            actor=principal.actor,
            now=utcnow(),
            idempotency_key=idempotency_key,
            idempotency_owner=principal.idempotency_owner,
            provider=provider,
        )
        return MoveOpportunityStagePayload(
            opportunity=OpportunityType.from_model(result.opportunity), errors=[]
        )
