from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from api.ids import encode_id
from models import OfferRedemption


@strawberry.type(
    name="OfferRedemption",
    description="A friend's offer code: issued once, redeemed once.",
)
class OfferRedemptionType:
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    code: str = strawberry.field(description="The redemption code the friend was given.")
    referral_id: strawberry.ID = strawberry.field(description="Opaque id of the referral.")
    issued_at: datetime = strawberry.field(description="When the code was issued (UTC).")
    expires_at: datetime | None = strawberry.field(description="When the code stops working.")
    redeemed_at: datetime | None = strawberry.field(description="When it was redeemed, if ever.")
    redeemed_by: str | None = strawberry.field(
        description="Who redeemed it (the customer's account or user reference)."
    )
    order_ref: str | None = strawberry.field(description="The order it was redeemed on.")

    @classmethod
    def from_model(cls, m: OfferRedemption) -> Self:
        return cls(
            id=strawberry.ID(encode_id("OfferRedemption", m.id)),
            code=m.code,
            referral_id=strawberry.ID(encode_id("Referral", m.referral_id)),
            issued_at=m.issued_at,
            expires_at=m.expires_at,
            redeemed_at=m.redeemed_at,
            redeemed_by=m.redeemed_by,
            order_ref=m.order_ref,
        )
