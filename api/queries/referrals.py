from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.pagination import Connection, Edge, PageInfo, decode_cursor, encode_cursor, page_size
from vouch.api.permissions import (
    conceal_absence,
    is_widget,
    require_advocate_access,
    require_authenticated,
    require_scope,
)
from vouch.api.selection import selected_names
from vouch.api.types.enums import ListOrder, ReferralStatus
from vouch.api.types.referral import NOT_LOADED, ReferralType
from vouch.attribution.referrals import PageParts, ReferralFilter, get_referral, list_referrals
from vouch.attribution.rewards import rewards_by_referrals
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
        filter: ReferralFilterInput | None = None,
        order: ListOrder = ListOrder.NEWEST_FIRST,
    ) -> Connection[ReferralType]:
        require_scope(info.context, Scope.READ)
        shown = selected_names(info, "nodes") | selected_names(info, "edges", "node")
        parts = PageParts(link="link" in shown, redemption="offerRedemption" in shown)
        page = await list_referrals(
            info.context.session,
            (filter or ReferralFilterInput()).to_domain(),
            first=page_size(first),
            after=decode_cursor(after),
            newest_first=order is ListOrder.NEWEST_FIRST,
            parts=parts,
        )
        widget = is_widget(info.context)
        rewards_of: dict[int, list[Any]] = {}
        if "rewards" in shown:
            # one statement for the page's rewards, instead of a dataloader call per referral
            # (as JSON inside the page statement they cost more CPU to decode: bench/RESULTS.md)
            rewards_of = await rewards_by_referrals(
                info.context.session, [row.referral.id for row in page.items]
            )
        edges = [
            Edge(
                cursor=encode_cursor(row.referral.id),
                node=ReferralType.from_model(
                    row.referral,
                    advocate=row.advocate,
                    link=row.link,
                    redemption=row.redemption if parts.redemption else NOT_LOADED,
                    rewards=rewards_of.get(row.referral.id),
                    for_widget=widget,
                    ctx=info.context,
                ),
            )
            for row in page.items
        ]
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=page.total,
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
