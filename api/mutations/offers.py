from __future__ import annotations

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.referral import OfferRedemptionType
from vouch.attribution.redemptions import redeem_offer_once, validate_redeem
from vouch.core.clock import utcnow
from vouch.models.enums import Scope


@strawberry.input(description="Redeem a referred friend's offer code.")
class RedeemOfferInput:
    code: str = strawberry.field(description="The redemption code shown to the friend.")
    redeemed_by: str = strawberry.field(
        description="Who redeems it: the customer's account or user reference."
    )
    order_ref: str | None = strawberry.field(
        default=None, description="The order the code is applied to."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retries with the same key and input get the first answer back.",
    )


@strawberry.type(description="The result of redeemOffer.")
class RedeemOfferPayload:
    redemption: OfferRedemptionType | None = strawberry.field(
        description="The redeemed code, or null if it was refused."
    )
    errors: list[InputError] = strawberry.field(
        description="Why it was refused: NOT_FOUND, ALREADY_REDEEMED, EXPIRED, INVALID, ..."
    )


@strawberry.type
class RedeemOfferMutation:
    @strawberry.mutation(
        description="Redeem an offer code exactly once; a second redemption is refused."
    )
    @transaction(lambda exc: RedeemOfferPayload(redemption=None, errors=user_errors(exc)))
    async def redeem_offer(self, info: Info, input: RedeemOfferInput) -> RedeemOfferPayload:
        principal = require_scope(info.context, Scope.WRITE)
        request = validate_redeem(input.code, input.redeemed_by, input.order_ref)
        redemption = await redeem_offer_once(
            info.context.session,
            request,
            idempotency_key=input.idempotency_key,
            now=utcnow(),
            idempotency_owner=principal.idempotency_owner,
        )
        return RedeemOfferPayload(
            redemption=OfferRedemptionType.from_model(redemption, reveal_code=True), errors=[]
        )
