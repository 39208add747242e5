from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

import strawberry

from api import loaders
from api.context import Context, Info
from api.ids import encode_id
from api.permissions import require_scope
from api.types.enums import ModerationState, ReferralSource, ReferralStatus
from api.types.opportunity import OpportunityType, opportunities_by_referral
from api.types.program import ProgramType
from api.types.revenue import RevenueEventType, revenue_by_referral
from api.types.reward import RewardType, rewards_by_referral
from models import Advocate, OfferRedemption, Referral, ReferralLink
from models.enums import Scope

_NOT_LOADED: Any = object()

if TYPE_CHECKING:
    from api.types.advocate import AdvocateType
    from api.types.link import ReferralLinkType


@strawberry.type(
    name="OfferRedemption", description="The referred friend's offer: issued once, redeemed once."
)
class OfferRedemptionType:
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    referral_id: strawberry.ID = strawberry.field(description="Opaque id of the referral.")
    code: str | None = strawberry.field(
        description="The redemption code; null for widget tokens (it belongs to the friend)."
    )
    issued_at: datetime = strawberry.field(description="When the code was issued (UTC).")
    expires_at: datetime | None = strawberry.field(description="When the code expires (UTC).")
    redeemed_at: datetime | None = strawberry.field(description="When it was redeemed (UTC).")
    redeemed: bool = strawberry.field(description="The code has been redeemed.")
    order_ref: str | None = strawberry.field(description="The order it was redeemed on.")
    redeemed_by: str | None = strawberry.field(
        description="Who redeemed it (the customer's account or user reference)."
    )

    @classmethod
    def from_model(cls, m: OfferRedemption, *, reveal_code: bool) -> Self:
        return cls(
            id=strawberry.ID(encode_id("OfferRedemption", m.id)),
            referral_id=strawberry.ID(encode_id("Referral", m.referral_id)),
            redeemed_by=m.redeemed_by if reveal_code else None,
            code=m.code if reveal_code else None,
            issued_at=m.issued_at,
            expires_at=m.expires_at,
            redeemed_at=m.redeemed_at,
            redeemed=m.redeemed_at is not None,
            order_ref=m.order_ref if reveal_code else None,
        )


@strawberry.type(name="Referral", description="A referred person attributed to an advocate.")
class ReferralType:
    db_id: strawberry.Private[int]
    advocate_db_id: strawberry.Private[int]
    program_db_id: strawberry.Private[int]
    link_db_id: strawberry.Private[int | None]
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
    email: str | None = strawberry.field(
        description="The friend's email; null once erased or for widget tokens."
    )
    name: str | None = strawberry.field(
        description="The friend's name; for widget tokens only the first name."
    )
    company: str | None = strawberry.field(
        description="The friend's company; null for widget tokens."
    )

    # Nested objects are plain fields, not resolvers: a list query that already joined them in
    # hands over finished objects (a resolver per field would cost more than the whole page's
    # SQL); otherwise the value is a deferred dataloader call that runs only if asked for.
    advocate: Annotated[AdvocateType, strawberry.lazy("api.types.advocate")] = strawberry.field(
        description="The advocate credited with the referral."
    )
    link: Annotated[ReferralLinkType, strawberry.lazy("api.types.link")] | None = strawberry.field(
        description="The link the friend came through; null for manual referrals."
    )
    offer_redemption: OfferRedemptionType | None = strawberry.field(
        description="The friend's offer redemption, once issued."
    )

    @strawberry.field(
        description="CRM opportunities sourced by this referral (API keys with read scope)."
    )
    async def opportunities(self, info: Info) -> list[OpportunityType]:
        require_scope(info.context, Scope.READ)
        rows = await opportunities_by_referral(info.context).load(self.db_id)
        return [OpportunityType.from_model(o) for o in rows]

    @strawberry.field(
        description="Revenue recorded against this referral, refunds included (read scope)."
    )
    async def revenue(self, info: Info) -> list[RevenueEventType]:
        require_scope(info.context, Scope.READ)
        rows = await revenue_by_referral(info.context).load(self.db_id)
        return [RevenueEventType.from_model(r) for r in rows]

    @strawberry.field(description="Both sides' rewards for this referral (read scope).")
    async def rewards(self, info: Info) -> list[RewardType]:
        require_scope(info.context, Scope.READ)
        rows = await rewards_by_referral(info.context).load(self.db_id)
        return [RewardType.from_model(r) for r in rows]

    @strawberry.field(description="The program.")
    async def program(self, info: Info) -> ProgramType:
        program = await loaders.program(info.context).load(self.program_db_id)
        assert program is not None
        return ProgramType.from_model(program)

    @classmethod
    def from_model(
        cls,
        m: Referral,
        *,
        advocate: Advocate | None = None,
        link: ReferralLink | None = None,
        redemption: Any = _NOT_LOADED,
        for_widget: bool = False,
        ctx: Context | None = None,
    ) -> Self:
        """``advocate``, ``link`` and ``redemption`` (None = has none) when already loaded;
        otherwise they are loaded through ``ctx``'s dataloaders if the query asks for them.
        ``for_widget`` hides the friend's contact details from the advocate's widget."""
        from api.types.advocate import AdvocateType
        from api.types.link import ReferralLinkType

        first_name = m.name.split()[0] if m.name and m.name.split() else None
        nested_advocate: Any
        if advocate is not None:
            nested_advocate = AdvocateType.from_model(advocate)
        else:
            nested_advocate = _Deferred(_load_advocate, ctx, m.advocate_id)
        nested_link: Any = None
        if link is not None:
            nested_link = ReferralLinkType.from_model(link)
        elif m.link_id is not None:
            nested_link = _Deferred(_load_link, ctx, m.link_id)
        nested_redemption: Any
        if redemption is _NOT_LOADED:
            nested_redemption = _Deferred(_load_redemption, ctx, m.id, not for_widget)
        else:
            nested_redemption = _redemption(redemption, reveal_code=not for_widget)
        return cls(
            advocate=nested_advocate,
            link=nested_link,
            offer_redemption=nested_redemption,
            email=None if for_widget else m.email,
            name=first_name if for_widget else m.name,
            company=None if for_widget else m.company,
            db_id=m.id,
            advocate_db_id=m.advocate_id,
            program_db_id=m.program_id,
            link_db_id=m.link_id,
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


class _Deferred:
    """An awaitable that starts its load only when GraphQL awaits the field's value."""

    __slots__ = ("_args", "_fn")

    def __init__(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._fn = fn
        self._args = args

    def __await__(self) -> Generator[Any, None, Any]:
        return self._fn(*self._args).__await__()


async def _load_advocate(ctx: Context, advocate_id: int) -> AdvocateType:
    from api.types.advocate import AdvocateType

    advocate = await loaders.advocate(ctx).load(advocate_id)
    assert advocate is not None
    return AdvocateType.from_model(advocate)


async def _load_link(ctx: Context, link_id: int) -> ReferralLinkType | None:
    from api.types.link import ReferralLinkType

    link = await loaders.link(ctx).load(link_id)
    return ReferralLinkType.from_model(link) if link is not None else None


async def _load_redemption(
    ctx: Context, referral_id: int, reveal_code: bool
) -> OfferRedemptionType | None:
    return _redemption(await loaders.redemption(ctx).load(referral_id), reveal_code=reveal_code)


def _redemption(row: OfferRedemption | None, *, reveal_code: bool) -> OfferRedemptionType | None:
    return None if row is None else OfferRedemptionType.from_model(row, reveal_code=reveal_code)
