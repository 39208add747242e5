"""``opportunity(id:)`` and ``opportunities(filter:)``: every deal Vouch received, referral-
sourced or not, so an integrator can confirm what arrived."""

from __future__ import annotations

from datetime import datetime

import strawberry

from vouch.api.connections import to_connection
from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import require_scope
from vouch.api.types.opportunity import OpportunityType
from vouch.attribution import opportunities
from vouch.attribution.opportunities import OpportunityFilter
from vouch.core.errors import ValidationFailed
from vouch.models.enums import Scope


@strawberry.input(description="Filters for the opportunity list; combined with AND.")
class OpportunityFilterInput:
    provider: str | None = strawberry.field(
        default=None, description="From this CRM: hubspot, salesforce or other."
    )
    crm_id: str | None = strawberry.field(
        default=None, description="With this CRM id (as the CRM gives it)."
    )
    status: list[str] | None = strawberry.field(
        default=None, description="In any of these statuses (open, won, lost)."
    )
    referred: bool | None = strawberry.field(
        default=None,
        description="true: only referral-sourced deals; false: only deals without a referral.",
    )
    referral_id: strawberry.ID | None = strawberry.field(
        default=None, description="Sourced by this referral."
    )
    updated_from: datetime | None = strawberry.field(
        default=None, description="Changed at or after this time (inclusive)."
    )

    def to_domain(self) -> OpportunityFilter:
        if self.updated_from is not None and self.updated_from.tzinfo is None:
            raise ValidationFailed("must include a time zone", field="filter.updatedFrom")
        if self.status is not None and len(self.status) > 3:
            raise ValidationFailed("too many statuses", field="filter.status")
        return OpportunityFilter(
            provider=self.provider,
            crm_id=self.crm_id,
            status=tuple(self.status or ()),
            referred=self.referred,
            referral_id=decode_id(self.referral_id, "Referral", field="filter.referralId")
            if self.referral_id
            else None,
            updated_from=self.updated_from,
        )


@strawberry.type
class OpportunityQueries:
    @strawberry.field(description="One deal by its opaque id (read scope).")
    async def opportunity(self, info: Info, id: strawberry.ID) -> OpportunityType:
        require_scope(info.context, Scope.READ)
        opp = await opportunities.get_opportunity(
            info.context.session, decode_id(id, "Opportunity")
        )
        return OpportunityType.from_model(opp)

    @strawberry.field(
        description="Every deal Vouch received from a CRM, with or without a referral, newest "
        "first (read scope)."
    )
    async def opportunities(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: OpportunityFilterInput | None = None,
    ) -> Connection[OpportunityType]:
        require_scope(info.context, Scope.READ)
        # newest first, forward only (`last`/`before` are not offered on this list)
        args = page_args("opportunities", first, after)
        page = await opportunities.list_opportunities(
            info.context.session,
            (filter or OpportunityFilterInput()).to_domain(),
            first=args.size,
            after=args.after,
        )
        return to_connection(page, OpportunityType.from_model, key=lambda o: o.id, args=args)
