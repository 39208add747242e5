from __future__ import annotations

import strawberry

from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.permissions import require_scope
from vouch.api.types.chain import AttributionChainType
from vouch.attribution import chain
from vouch.core.errors import ValidationFailed
from vouch.models.enums import Scope


@strawberry.type
class ChainQueries:
    @strawberry.field(
        description="Why a referral, opportunity or revenue event is credited to an advocate: "
        "the full attribution chain. Give exactly one id."
    )
    async def attribution_chain(
        self,
        info: Info,
        referral_id: strawberry.ID | None = None,
        opportunity_id: strawberry.ID | None = None,
        revenue_event_id: strawberry.ID | None = None,
    ) -> AttributionChainType:
        require_scope(info.context, Scope.READ)
        session = info.context.session
        given = [x for x in (referral_id, opportunity_id, revenue_event_id) if x]
        if len(given) != 1:
            raise ValidationFailed(
                "give exactly one of referralId, opportunityId, revenueEventId", field="referralId"
            )
        if referral_id:
            found = await chain.chain_for_referral(
                session, decode_id(referral_id, "Referral", field="referralId")
            )
        elif opportunity_id:
            found = await chain.chain_for_opportunity(
                session, decode_id(opportunity_id, "Opportunity", field="opportunityId")
            )
        else:
            found = await chain.chain_for_revenue(
                session,
                decode_id(revenue_event_id or "", "RevenueEvent", field="revenueEventId"),
            )
        return AttributionChainType.from_domain(found)

    @strawberry.field(
        description="Every chain forward from an advocate (up to 200 referrals, oldest first), "
        "including referrals since re-attributed away."
    )
    async def advocate_chains(
        self, info: Info, advocate_id: strawberry.ID
    ) -> list[AttributionChainType]:
        require_scope(info.context, Scope.READ)
        found = await chain.chains_for_advocate(
            info.context.session, decode_id(advocate_id, "Advocate", field="advocateId")
        )
        return [AttributionChainType.from_domain(c) for c in found]
