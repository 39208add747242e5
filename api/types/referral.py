from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Self

import strawberry

from api import loaders
from api.context import Info, WidgetPrincipal
from api.ids import encode_id
from api.types.enums import ModerationState, ReferralSource, ReferralStatus
from api.types.program import ProgramType
from models import OfferRedemption, Referral

if TYPE_CHECKING:
    from api.types.advocate import AdvocateType
    from api.types.link import ReferralLinkType


@strawberry.type(
    name="OfferRedemption", description="The referred friend's offer: issued once, redeemed once."
)
class OfferRedemptionType:
    code: str | None = strawberry.field(
        description="The redemption code; null for widget tokens (it belongs to the friend)."
    )
    issued_at: datetime = strawberry.field(description="When the code was issued (UTC).")
    expires_at: datetime | None = strawberry.field(description="When the code expires (UTC).")
    redeemed_at: datetime | None = strawberry.field(description="When it was redeemed (UTC).")
    redeemed: bool = strawberry.field(description="The code has been redeemed.")
    order_ref: str | None = strawberry.field(description="The order it was redeemed on.")

    @classmethod
    def from_model(cls, m: OfferRedemption, *, reveal_code: bool) -> Self:
        return cls(
            code=m.code if reveal_code else None,
            issued_at=m.issued_at,
            expires_at=m.expires_at,
            redeemed_at=m.redeemed_at,
            redeemed=m.redeemed_at is not None,
            order_ref=m.order_ref if reveal_code else None,
        )


def _is_widget(info: Info) -> bool:
    return isinstance(info.context.principal, WidgetPrincipal)


@strawberry.type(name="Referral", description="A referred person attributed to an advocate.")
class ReferralType:
    db_id: strawberry.Private[int]
    advocate_db_id: strawberry.Private[int]
    program_db_id: strawberry.Private[int]
    link_db_id: strawberry.Private[int | None]
    private_email: strawberry.Private[str | None]
    private_name: strawberry.Private[str | None]
    private_company: strawberry.Private[str | None]
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    status: ReferralStatus = strawberry.field(
        description="lead, qualified, opportunity, won, lost, churned, refunded or rejected."
    )
    source: ReferralSource = strawberry.field(description="How the referral reached Vouch.")
    flags: list[str] = strawberry.field(
        description="Fraud signals: self_referral, duplicate, velocity, disposable_email, ..."
    )
    flagged: bool = strawberry.field(description="At least one fraud flag is set.")
    moderation: ModerationState = strawberry.field(description="Fraud review state.")
    moderation_reason: str | None = strawberry.field(description="Why it was held or rejected.")
    consent: bool = strawberry.field(description="The friend consented to be contacted.")
    erased: bool = strawberry.field(description="The friend's personal data has been erased.")
    created_at: datetime = strawberry.field(description="When the friend was referred (UTC).")
    updated_at: datetime = strawberry.field(description="Last status change (UTC).")

    @strawberry.field(description="The friend's email; null once erased or for widget tokens.")
    def email(self, info: Info) -> str | None:
        return None if _is_widget(info) else self.private_email

    @strawberry.field(description="The friend's name; for widget tokens only the first name.")
    def name(self, info: Info) -> str | None:
        if self.private_name and _is_widget(info):
            return self.private_name.split()[0]
        return self.private_name

    @strawberry.field(description="The friend's company; null for widget tokens.")
    def company(self, info: Info) -> str | None:
        return None if _is_widget(info) else self.private_company

    @strawberry.field(description="The advocate credited with the referral.")
    async def advocate(
        self, info: Info
    ) -> Annotated[AdvocateType, strawberry.lazy("api.types.advocate")]:
        from api.types.advocate import AdvocateType

        advocate = await loaders.advocate(info.context).load(self.advocate_db_id)
        assert advocate is not None
        return AdvocateType.from_model(advocate)

    @strawberry.field(description="The link the friend came through; null for manual referrals.")
    async def link(
        self, info: Info
    ) -> Annotated[ReferralLinkType, strawberry.lazy("api.types.link")] | None:
        from api.types.link import ReferralLinkType

        if self.link_db_id is None:
            return None
        link = await loaders.link(info.context).load(self.link_db_id)
        return ReferralLinkType.from_model(link) if link is not None else None

    @strawberry.field(description="The program.")
    async def program(self, info: Info) -> ProgramType:
        program = await loaders.program(info.context).load(self.program_db_id)
        assert program is not None
        return ProgramType.from_model(program)

    @strawberry.field(description="The friend's offer redemption, once issued.")
    async def offer_redemption(self, info: Info) -> OfferRedemptionType | None:
        row = await loaders.redemption(info.context).load(self.db_id)
        if row is None:
            return None
        return OfferRedemptionType.from_model(row, reveal_code=not _is_widget(info))

    @classmethod
    def from_model(cls, m: Referral) -> Self:
        return cls(
            db_id=m.id,
            advocate_db_id=m.advocate_id,
            program_db_id=m.program_id,
            link_db_id=m.link_id,
            private_email=m.email,
            private_name=m.name,
            private_company=m.company,
            id=strawberry.ID(encode_id("Referral", m.id)),
            status=ReferralStatus(m.status),
            source=ReferralSource(m.source),
            flags=list(m.flags or []),
            flagged=bool(m.flags),
            moderation=ModerationState(m.moderation),
            moderation_reason=m.moderation_reason,
            consent=m.consent,
            erased=m.erased_at is not None,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )
