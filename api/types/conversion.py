from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Self

import strawberry

from vouch.api.ids import encode_id
from vouch.api.types.node import Node
from vouch.models.snapshots import ConversionSnapshot


@strawberry.enum(name="ConversionKind", description="What the referred friend did.")
class ConversionKindType(Enum):
    SIGNUP = "signup"
    PURCHASE = "purchase"


@strawberry.type(name="Conversion", description="A signup or purchase reported against a referral.")
class ConversionType(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    referral_id: strawberry.ID = strawberry.field(description="Opaque id of the referral.")
    kind: ConversionKindType = strawberry.field(description="Signup or purchase.")
    external_ref: str = strawberry.field(
        description="The reporter's reference (order or account id); empty if none."
    )
    amount_minor: int = strawberry.field(description="Amount in minor units (0 for signups).")
    currency: str = strawberry.field(description="ISO-4217 currency of the amount.")
    occurred_at: datetime = strawberry.field(description="When it happened (UTC).")

    @classmethod
    def from_model(cls, m: ConversionSnapshot) -> Self:
        return cls(
            id=strawberry.ID(encode_id("Conversion", m.id)),
            referral_id=strawberry.ID(encode_id("Referral", m.referral_id)),
            kind=ConversionKindType(m.kind),
            external_ref=m.external_ref,
            amount_minor=m.amount_minor,
            currency=m.currency,
            occurred_at=m.occurred_at,
        )
