from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from api.ids import encode_id
from models import Advocate


@strawberry.type(name="Advocate", description="A customer contact who may advocate and share.")
class AdvocateType:
    db_id: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    external_id: str = strawberry.field(description="The CRM's id for this contact.")
    email: str | None = strawberry.field(description="Email; null once erased.")
    first_name: str | None = strawberry.field(description="First name.")
    last_name: str | None = strawberry.field(description="Last name.")
    account_id: str | None = strawberry.field(description="The CRM account this contact is in.")
    account_name: str | None = strawberry.field(description="The account's name.")
    persona: str | None = strawberry.field(description="Persona, e.g. champion, admin, exec.")
    segment: str | None = strawberry.field(description="Customer segment.")
    is_icp: bool = strawberry.field(description="In the ideal customer profile.")
    consent_referral: bool = strawberry.field(description="Agreed to take part in referrals.")
    tier: int | None = strawberry.field(description="Advocacy tier 1 (top) to 3; null if none.")
    score: float = strawberry.field(description="Readiness score, 0-100.")
    erased: bool = strawberry.field(description="Personal data has been erased.")
    created_at: datetime = strawberry.field(description="When the advocate was created (UTC).")

    @classmethod
    def from_model(cls, m: Advocate) -> Self:
        return cls(
            db_id=m.id,
            id=strawberry.ID(encode_id("Advocate", m.id)),
            external_id=m.external_id,
            email=m.email,
            first_name=m.first_name,
            last_name=m.last_name,
            account_id=m.account_id,
            account_name=m.account_name,
            persona=m.persona,
            segment=m.segment,
            is_icp=m.is_icp,
            consent_referral=m.consent_referral,
            tier=m.tier,
            score=round(m.score, 2),
            erased=m.erased_at is not None,
            created_at=m.created_at,
        )
