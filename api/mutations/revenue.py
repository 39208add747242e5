from __future__ import annotations

from datetime import datetime

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.revenue import RevenueEventType
from vouch.attribution import revenue
from vouch.attribution.revenue import RevenueData
from vouch.core.clock import utcnow
from vouch.models.enums import Scope


@strawberry.input(description="A charge or refund from billing.")
class RecordRevenueInput:
    external_id: str = strawberry.field(description="The billing system's id (the natural key).")
    kind: str = strawberry.field(description="one_time, recurring or refund.")
    amount_minor: int = strawberry.field(description="Positive amount in minor units.")
    currency: str | None = strawberry.field(
        default=None,
        description="ISO-4217 currency. Omitted: the refunded charge's, else the deal's, else "
        "the program's; never assumed to be USD (docs/REPORTS.md#money-input).",
    )
    occurred_at: datetime = strawberry.field(description="When it happened (with offset).")
    opportunity_crm_id: str | None = strawberry.field(
        default=None, description="The deal it belongs to: its id as the CRM gives it."
    )
    opportunity_provider: str | None = strawberry.field(
        default=None,
        description="hubspot, salesforce or other: needed only when two CRMs use the same id.",
    )
    referral_id: strawberry.ID | None = strawberry.field(
        default=None, description="The referral it belongs to (when there is no deal)."
    )
    refunds_external_id: str | None = strawberry.field(
        default=None,
        description="For refunds: the charge refunded; its deal, referral and currency apply.",
    )

    def to_domain(self) -> RevenueData:
        return RevenueData(
            external_id=self.external_id,
            kind=self.kind,
            amount_minor=self.amount_minor,
            currency=self.currency,
            occurred_at=self.occurred_at,
            opportunity_crm_id=self.opportunity_crm_id,
            opportunity_provider=self.opportunity_provider,
            referral_id=decode_id(self.referral_id, "Referral", field="referralId")
            if self.referral_id
            else None,
            refunds_external_id=self.refunds_external_id,
        )


@strawberry.type(description="Result of recordRevenue.")
class RecordRevenuePayload:
    revenue_event: RevenueEventType | None = strawberry.field(description="The recorded event.")
    created: bool = strawberry.field(
        description="False when it had been recorded before (a retry with the same idempotency "
        "key replays the first answer)."
    )
    errors: list[InputError] = strawberry.field(description="Why nothing was written.")


@strawberry.type
class RevenueMutations:
    @strawberry.mutation(
        description="Record a charge or refund once (write scope). Refunds inside a reward's "
        "clawback window void it."
    )
    @transaction(
        lambda exc: RecordRevenuePayload(revenue_event=None, created=False, errors=user_errors(exc))
    )
    async def record_revenue(
        self, info: Info, input: RecordRevenueInput, idempotency_key: str | None = None
    ) -> RecordRevenuePayload:
        principal = require_scope(info.context, Scope.WRITE)

        result = await revenue.record_revenue(
            info.context.session,
            input.to_domain(),
            source="api",
            actor=principal.actor,
            now=utcnow(),
            idempotency_key=idempotency_key,
            idempotency_owner=principal.idempotency_owner,
        )
        return RecordRevenuePayload(
            revenue_event=RevenueEventType.from_model(result.event),
            created=result.created,
            errors=[],
        )
