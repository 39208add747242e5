from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_error, user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.advocate import AdvocateType
from vouch.attribution.erasure import erase_advocate
from vouch.catalog.advocates import (
    AdvocateData,
    import_advocates,
    upsert_advocate,
    widget_advocate,
)
from vouch.core.clock import utcnow
from vouch.models import Advocate
from vouch.models.enums import Scope

# GraphQL input field -> column; UNSET (omitted) leaves the column as it is, null clears it.
_COLUMNS = {
    "email": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "account_id": "account_id",
    "account_name": "account_name",
    "account_domain": "account_domain",
    "persona": "persona",
    "segment": "segment",
    "is_icp": "is_icp",
    "consent_referral": "consent_referral",
    "consent_marketing": "consent_marketing",
    "opted_in_extra_asks": "opted_in_extra_asks",
}


@strawberry.input(
    description="An advocate as the CRM knows it. Omitted fields are left as they are; "
    "null clears a field."
)
class AdvocateInput:
    external_id: str = strawberry.field(description="The CRM's id for this contact (the key).")
    email: str | None = strawberry.field(default=strawberry.UNSET, description="Email address.")
    first_name: str | None = strawberry.field(default=strawberry.UNSET, description="First name.")
    last_name: str | None = strawberry.field(default=strawberry.UNSET, description="Last name.")
    account_id: str | None = strawberry.field(
        default=strawberry.UNSET, description="The CRM account id."
    )
    account_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="The account's name."
    )
    account_domain: str | None = strawberry.field(
        default=strawberry.UNSET, description="The account's web domain."
    )
    persona: str | None = strawberry.field(
        default=strawberry.UNSET, description="Persona, e.g. champion, admin, exec."
    )
    segment: str | None = strawberry.field(default=strawberry.UNSET, description="Segment.")
    is_icp: bool | None = strawberry.field(
        default=strawberry.UNSET, description="In the ideal customer profile."
    )
    consent_referral: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Agreed to take part in referrals."
    )
    consent_marketing: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Agreed to marketing asks."
    )
    opted_in_extra_asks: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Tier 1 opt-in to a second ask per window."
    )

    def to_domain(self) -> AdvocateData:
        values: dict[str, Any] = {
            column: getattr(self, attr)
            for attr, column in _COLUMNS.items()
            if getattr(self, attr) is not strawberry.UNSET
        }
        return AdvocateData(external_id=self.external_id, values=values)


@strawberry.enum(description="What importAdvocates does when some rows are invalid.")
class ImportErrorPolicy(Enum):
    REJECT_EVERYTHING = "reject_everything"
    REJECT_FAILED_ROWS = "reject_failed_rows"


@strawberry.type(description="Result of upsertAdvocate.")
class UpsertAdvocatePayload:
    advocate: AdvocateType | None = strawberry.field(description="The advocate as stored now.")
    created: bool = strawberry.field(description="True if the advocate was new.")
    errors: list[InputError] = strawberry.field(description="Why nothing was written.")


@strawberry.type(description="Result of importAdvocates.")
class ImportAdvocatesPayload:
    advocates: list[AdvocateType] = strawberry.field(
        description="The advocates written, in input order."
    )
    created_count: int = strawberry.field(description="How many were new.")
    updated_count: int = strawberry.field(description="How many existed and were updated.")
    errors: list[InputError] = strawberry.field(
        description="Per-row problems; field is 'advocates.<row>.<field>'."
    )


@strawberry.type(description="Result of eraseAdvocate.")
class EraseAdvocatePayload:
    advocate: AdvocateType | None = strawberry.field(
        description="The advocate with personal data removed; counts and history remain."
    )
    errors: list[InputError] = strawberry.field(description="Why nothing was erased.")


@strawberry.type(description="Result of createWidgetToken.")
class CreateWidgetTokenPayload:
    token: str | None = strawberry.field(
        description="Bearer token for the in-product widget; sees only this advocate."
    )
    expires_at: datetime | None = strawberry.field(description="When the token expires (UTC).")
    advocate: AdvocateType | None = strawberry.field(description="The advocate it is for.")
    errors: list[InputError] = strawberry.field(description="Why no token was minted.")


@dataclass(frozen=True, slots=True)
class _Minted:
    advocate: Advocate
    token: str
    expires_at: datetime


@strawberry.type
class AdvocateMutations:
    @strawberry.mutation(
        description="Create or update an advocate by external id (write scope). Safe to retry."
    )
    @transaction(
        lambda exc: UpsertAdvocatePayload(advocate=None, created=False, errors=user_errors(exc))
    )
    async def upsert_advocate(self, info: Info, input: AdvocateInput) -> UpsertAdvocatePayload:
        require_scope(info.context, Scope.WRITE)
        secret = info.context.settings.resolved_secret()

        result = await upsert_advocate(info.context.session, input.to_domain(), secret=secret)
        return UpsertAdvocatePayload(
            advocate=AdvocateType.from_model(result.advocate), created=result.created, errors=[]
        )

    @strawberry.mutation(
        description="Upsert up to 1000 advocates in one transaction (write scope). By default "
        "one invalid row rejects the whole import; every row's problems are reported."
    )
    @transaction(
        lambda exc: ImportAdvocatesPayload(
            advocates=[], created_count=0, updated_count=0, errors=user_errors(exc)
        )
    )
    async def import_advocates(
        self,
        info: Info,
        advocates: list[AdvocateInput],
        error_policy: ImportErrorPolicy = ImportErrorPolicy.REJECT_EVERYTHING,
    ) -> ImportAdvocatesPayload:
        require_scope(info.context, Scope.WRITE)
        secret = info.context.settings.resolved_secret()

        result = await import_advocates(
            info.context.session,
            [row.to_domain() for row in advocates],
            secret=secret,
            skip_invalid=error_policy is ImportErrorPolicy.REJECT_FAILED_ROWS,
        )
        return ImportAdvocatesPayload(
            advocates=[AdvocateType.from_model(a) for a in result.advocates],
            created_count=result.created,
            updated_count=result.updated,
            errors=[user_error(row.error) for row in result.errors],
        )

    @strawberry.mutation(
        description="GDPR erasure of an advocate (admin scope): removes email, names and CRM "
        "id, revokes their links; referrals, rewards and totals are kept."
    )
    @transaction(lambda exc: EraseAdvocatePayload(advocate=None, errors=user_errors(exc)))
    async def erase_advocate(self, info: Info, id: strawberry.ID) -> EraseAdvocatePayload:
        require_scope(info.context, Scope.ADMIN)
        secret = info.context.settings.resolved_secret()

        advocate = await erase_advocate(
            info.context.session, decode_id(id, "Advocate"), secret=secret
        )
        return EraseAdvocatePayload(advocate=AdvocateType.from_model(advocate), errors=[])

    @strawberry.mutation(
        description="Mint a short-lived widget token for one advocate (write scope). The "
        "token can read that advocate's links, stats and referrals and create its share links."
    )
    @transaction(
        lambda exc: CreateWidgetTokenPayload(
            token=None, expires_at=None, advocate=None, errors=user_errors(exc)
        )
    )
    async def create_widget_token(
        self, info: Info, advocate_id: strawberry.ID
    ) -> CreateWidgetTokenPayload:
        require_scope(info.context, Scope.WRITE)
        tokens = info.context.widget_tokens

        advocate = await widget_advocate(
            info.context.session, decode_id(advocate_id, "Advocate", field="advocateId")
        )
        minted = _Minted(
            advocate=advocate,
            token=tokens.mint(advocate.id),
            expires_at=utcnow() + timedelta(seconds=tokens.ttl_seconds),
        )
        return CreateWidgetTokenPayload(
            token=minted.token,
            expires_at=minted.expires_at,
            advocate=AdvocateType.from_model(minted.advocate),
            errors=[],
        )
