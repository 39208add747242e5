from __future__ import annotations

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.attribution.erasure import erase_referred_person
from vouch.models.enums import Scope


@strawberry.type(description="Result of eraseReferredPerson.")
class EraseReferredPersonPayload:
    erased_referrals: int = strawberry.field(
        description="Referrals whose personal data was removed."
    )
    cleared_clicks: int = strawberry.field(
        description="Clicks whose IP hash, user agent and visitor id were removed."
    )
    errors: list[InputError] = strawberry.field(description="Why nothing was erased.")


@strawberry.type
class ReferralMutations:
    @strawberry.mutation(
        description="GDPR erasure of a referred friend, by email (every program) or by one "
        "referral (admin scope). Statuses, rewards and totals are kept; the person stays "
        "deduplicated through a keyed hash."
    )
    @transaction(
        lambda exc: EraseReferredPersonPayload(
            erased_referrals=0, cleared_clicks=0, errors=user_errors(exc)
        )
    )
    async def erase_referred_person(
        self,
        info: Info,
        email: str | None = None,
        referral_id: strawberry.ID | None = None,
    ) -> EraseReferredPersonPayload:
        require_scope(info.context, Scope.ADMIN)
        secret = info.context.settings.resolved_secret()

        result = await erase_referred_person(
            info.context.session,
            secret=secret,
            email=email,
            referral_id=decode_id(referral_id, "Referral", field="referralId")
            if referral_id is not None
            else None,
        )
        return EraseReferredPersonPayload(
            erased_referrals=result.referrals, cleared_clicks=result.clicks, errors=[]
        )
