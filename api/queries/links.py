from __future__ import annotations

import strawberry

from vouch.api.connections import to_connection
from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import (
    conceal_absence,
    require_advocate_access,
    require_authenticated,
    require_scope,
)
from vouch.api.types.enums import LinkStatus, ListOrder
from vouch.api.types.link import ReferralLinkType
from vouch.attribution.links import (
    LinkFilter,
    check_channel,
    get_link,
    get_link_by_code,
    list_links,
)
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models.enums import Scope


@strawberry.input(description="Filters for the referral link list; combined with AND.")
class ReferralLinkFilterInput:
    program_id: strawberry.ID | None = strawberry.field(
        default=None, description="In this program."
    )
    advocate_id: strawberry.ID | None = strawberry.field(
        default=None, description="Belonging to this advocate."
    )
    channel: str | None = strawberry.field(default=None, description="For this channel.")
    status: LinkStatus | None = strawberry.field(default=None, description="Active or revoked.")

    def to_domain(self) -> LinkFilter:
        return LinkFilter(
            program_id=decode_id(self.program_id, "Program", field="filter.programId")
            if self.program_id
            else None,
            advocate_id=decode_id(self.advocate_id, "Advocate", field="filter.advocateId")
            if self.advocate_id
            else None,
            channel=check_channel(self.channel) if self.channel else None,
            status=self.status.value if self.status is not None else None,
        )


@strawberry.type
class LinkQueries:
    @strawberry.field(description="Referral links, filtered, oldest or newest first.")
    async def referral_links(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ReferralLinkFilterInput | None = None,
        order: ListOrder = ListOrder.OLDEST_FIRST,
    ) -> Connection[ReferralLinkType]:
        require_scope(info.context, Scope.READ)
        args = page_args("referralLinks", first, after, last, before)
        page = await list_links(
            info.context.session,
            (filter or ReferralLinkFilterInput()).to_domain(),
            **args.window(),
            newest_first=order is ListOrder.NEWEST_FIRST,
        )
        return to_connection(page, ReferralLinkType.from_model, key=lambda link: link.id, args=args)

    @strawberry.field(
        description="One referral link by id or by its code (a widget token: only its own)."
    )
    async def referral_link(
        self, info: Info, id: strawberry.ID | None = None, code: str | None = None
    ) -> ReferralLinkType:
        if (id is None) == (code is None):
            raise ValidationFailed("give either id or code", field="id")
        require_authenticated(info.context)
        session = info.context.session
        try:
            if id is not None:
                link = await get_link(session, decode_id(id, "ReferralLink"))
            else:
                assert code is not None
                link = await get_link_by_code(session, info.context.codec, code[:64])
        except NotFound:
            conceal_absence(info.context)
            raise
        require_advocate_access(info.context, link.advocate_id)
        return ReferralLinkType.from_model(link)
