from __future__ import annotations

from datetime import datetime

import strawberry

from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import (
    conceal_absence,
    is_widget,
    require_advocate_access,
    require_authenticated,
    require_scope,
)
from vouch.api.types.enums import ListOrder, ReferralStatus
from vouch.api.types.referral import ReferralType, referral_connection
from vouch.attribution.referrals import ReferralFilter, get_referral
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models.enums import Scope


@strawberry.input(description="Filters for the referral list; combined with AND.")
class ReferralFilterInput:
    status: list[ReferralStatus] | None = strawberry.field(
        default=None, description="In any of these statuses."
    )
    program_id: strawberry.ID | None = strawberry.field(
        default=None, description="In this program."
    )
    advocate_id: strawberry.ID | None = strawberry.field(
        default=None, description="Credited to this advocate."
    )
    link_id: strawberry.ID | None = strawberry.field(
        default=None, description="Through this referral link."
    )
    flagged: bool | None = strawberry.field(
        default=None, description="With (true) or without (false) fraud flags."
    )
    created_from: datetime | None = strawberry.field(
        default=None, description="Referred at or after this time (inclusive)."
    )
    created_to: datetime | None = strawberry.field(
        default=None, description="Referred before this time (exclusive)."
    )

    def to_domain(self) -> ReferralFilter:
        for name, value in (("createdFrom", self.created_from), ("createdTo", self.created_to)):
            if value is not None and value.tzinfo is None:
                raise ValidationFailed("must include a time zone", field=f"filter.{name}")
        if self.status is not None and len(self.status) > 20:
            raise ValidationFailed("too many statuses", field="filter.status")
        return ReferralFilter(
            status=tuple(s.value for s in self.status or ()),
            program_id=decode_id(self.program_id, "Program", field="filter.programId")
            if self.program_id
            else None,
            advocate_id=decode_id(self.advocate_id, "Advocate", field="filter.advocateId")
            if self.advocate_id
            else None,
            link_id=decode_id(self.link_id, "ReferralLink", field="filter.linkId")
            if self.link_id
            else None,
            flagged=self.flagged,
            created_from=self.created_from,
            created_to=self.created_to,
        )


@strawberry.type
class ReferralQueries:
    @strawberry.field(
        description="Referrals, newest first by default, filtered. Advocate, link and offer "
        "redemption come with the page at no extra cost."
    )
    async def referrals(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ReferralFilterInput | None = None,
        order: ListOrder = ListOrder.NEWEST_FIRST,
    ) -> Connection[ReferralType]:
        require_scope(info.context, Scope.READ)
        return await referral_connection(
            info,
            (filter or ReferralFilterInput()).to_domain(),
            page_args("referrals", first, after, last, before),
            newest_first=order is ListOrder.NEWEST_FIRST,
        )

    @strawberry.field(description="One referral by id (a widget token: only its own advocate's).")
    async def referral(self, info: Info, id: strawberry.ID) -> ReferralType:
        referral_id = decode_id(id, "Referral")
        require_authenticated(info.context)
        try:
            referral = await get_referral(info.context.session, referral_id)
        except NotFound:
            conceal_absence(info.context)
            raise
        require_advocate_access(info.context, referral.advocate_id)
        return ReferralType.from_model(
            referral, for_widget=is_widget(info.context), ctx=info.context
        )
