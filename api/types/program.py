from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from api.ids import encode_id
from models import Program


@strawberry.type(name="Program", description="A referral or advocacy program.")
class ProgramType:
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    slug: str = strawberry.field(description="URL-safe unique name.")
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="What the program is about.")
    status: str = strawberry.field(description="draft, active, paused or archived.")
    currency: str = strawberry.field(description="ISO-4217 currency of the program's rewards.")
    attribution_window_days: int = strawberry.field(
        description="How long after a click a signup still counts."
    )
    attribution_model: str = strawberry.field(
        description="first_touch or last_touch: which link wins when a friend used several."
    )
    require_tracking_consent: bool = strawberry.field(
        description="No attribution cookie is set until the friend consents."
    )
    frequency_cap_days: int = strawberry.field(description="Ask frequency cap window in days.")
    frequency_cap_count: int = strawberry.field(description="Automated asks allowed per window.")
    offer_kind: str = strawberry.field(description="The referred-side offer's kind.")
    offer_value: int = strawberry.field(
        description="Percent for percent_off, minor units for amount_off/credit, days for trials."
    )
    offer_title: str = strawberry.field(description="The offer as the friend sees it.")
    offer_terms: str = strawberry.field(description="The offer's terms.")
    offer_expires_at: datetime | None = strawberry.field(description="When the offer ends.")
    rules_version: int = strawberry.field(
        description="Version of the attribution and reward rules, bumped on every change."
    )
    created_at: datetime = strawberry.field(description="When the program was created (UTC).")

    @classmethod
    def from_model(cls, m: Program) -> Self:
        return cls(
            id=strawberry.ID(encode_id("Program", m.id)),
            slug=m.slug,
            name=m.name,
            description=m.description,
            status=m.status,
            currency=m.currency,
            attribution_window_days=m.attribution_window_days,
            attribution_model=m.attribution_model,
            require_tracking_consent=m.require_tracking_consent,
            frequency_cap_days=m.frequency_cap_days,
            frequency_cap_count=m.frequency_cap_count,
            offer_kind=m.offer_kind,
            offer_value=m.offer_value,
            offer_title=m.offer_title,
            offer_terms=m.offer_terms,
            offer_expires_at=m.offer_expires_at,
            rules_version=m.rules_version,
            created_at=m.created_at,
        )
