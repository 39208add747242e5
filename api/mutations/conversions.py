from __future__ import annotations

from datetime import datetime

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.conversion import ConversionKindType, ConversionType
from vouch.attribution.redemptions import record_conversion_once, validate_conversion
from vouch.core.clock import utcnow
from vouch.models.enums import Scope


@strawberry.input(description="Report a signup or purchase against a redemption code.")
class RecordConversionInput:
    redemption_code: str = strawberry.field(description="The friend's redemption code.")
    kind: ConversionKindType = strawberry.field(description="Signup or purchase.")
    external_ref: str | None = strawberry.field(
        default=None,
        description="Your reference (order or account id); the same reference is recorded once.",
    )
    amount_minor: int = strawberry.field(
        default=0, description="Purchase amount in minor units; 0 for signups."
    )
    currency: str | None = strawberry.field(
        default=None, description="ISO-4217 currency; omitted: the program's (never assumed USD)."
    )
    occurred_at: datetime | None = strawberry.field(
        default=None, description="When it happened (defaults to now)."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retries with the same key and input get the first answer back; the key "
        "belongs to this API key and this operation (reusing it elsewhere is "
        "IDEMPOTENCY_MISMATCH). A defaulted occurredAt is not part of the request.",
    )


@strawberry.type(description="The result of recordConversion.")
class RecordConversionPayload:
    conversion: ConversionType | None = strawberry.field(
        description="The recorded conversion (the first one, when re-reported)."
    )
    errors: list[InputError] = strawberry.field(description="Why it was refused.")


@strawberry.type
class RecordConversionMutation:
    @strawberry.mutation(
        description="Record a signup or purchase; re-reporting the same reference is a no-op."
    )
    @transaction(lambda exc: RecordConversionPayload(conversion=None, errors=user_errors(exc)))
    async def record_conversion(
        self, info: Info, input: RecordConversionInput
    ) -> RecordConversionPayload:
        principal = require_scope(info.context, Scope.WRITE)
        request = validate_conversion(
            redemption_code=input.redemption_code,
            kind=input.kind.value,
            external_ref=input.external_ref,
            amount_minor=input.amount_minor,
            currency=input.currency,
            occurred_at=input.occurred_at,
            now=utcnow(),
        )
        conversion, _ = await record_conversion_once(
            info.context.session,
            request,
            idempotency_key=input.idempotency_key,
            idempotency_owner=principal.idempotency_owner,
        )
        return RecordConversionPayload(conversion=ConversionType.from_model(conversion), errors=[])
