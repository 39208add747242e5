from __future__ import annotations

import strawberry

from vouch.advocacy.widget import widget_view
from vouch.api.connections import to_connection
from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import (
    conceal_absence,
    require_advocate_access,
    require_authenticated,
    require_scope,
    require_widget,
)
from vouch.api.selection import selected_names
from vouch.api.types.advocate import AdvocateType
from vouch.api.types.enums import ListOrder
from vouch.api.types.link import ReferralLinkType
from vouch.attribution.links import AdvocateLinks, advocate_with_links
from vouch.catalog.advocates import (
    AdvocateFilter,
    get_advocate,
    get_advocate_by_external_id,
    list_advocates,
    read_advocate,
)
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models.enums import Scope


@strawberry.input(description="Filters for the advocate list; all optional, combined with AND.")
class AdvocateFilterInput:
    program_id: strawberry.ID | None = strawberry.field(
        default=None, description="Advocates with a link in this program."
    )
    tier: int | None = strawberry.field(default=None, description="Tier 1, 2 or 3.")
    min_score: float | None = strawberry.field(default=None, description="Score at least.")
    max_score: float | None = strawberry.field(default=None, description="Score at most.")
    segment: str | None = strawberry.field(default=None, description="Customer segment.")
    has_referred: bool | None = strawberry.field(
        default=None, description="Has (or has not) made at least one referral."
    )
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive match on name or email."
    )

    def to_domain(self) -> AdvocateFilter:
        return AdvocateFilter(
            program_id=decode_id(self.program_id, "Program", field="filter.programId")
            if self.program_id
            else None,
            tier=self.tier,
            min_score=self.min_score,
            max_score=self.max_score,
            segment=self.segment,
            has_referred=self.has_referred,
            search=self.search[:200] if self.search else None,
        )


# Advocate fields the widget's one-statement read carries besides the links.
WIDGET_EXTRAS = frozenset({"referralCount", "points", "rewards", "nextAsk", "referralPrompt"})


def _links(found: AdvocateLinks) -> list[ReferralLinkType]:
    return [ReferralLinkType.from_model(link, found.stats[link.id]) for link in found.links]


@strawberry.type
class AdvocateQueries:
    @strawberry.field(description="Advocates (not erased), filtered, oldest or newest first.")
    async def advocates(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: AdvocateFilterInput | None = None,
        order: ListOrder = ListOrder.OLDEST_FIRST,
    ) -> Connection[AdvocateType]:
        require_scope(info.context, Scope.READ)
        args = page_args("advocates", first, after, last, before)
        page = await list_advocates(
            info.context.session,
            (filter or AdvocateFilterInput()).to_domain(),
            **args.window(),
            newest_first=order is ListOrder.NEWEST_FIRST,
        )
        return to_connection(page, AdvocateType.from_model, key=lambda a: a.id, args=args)

    @strawberry.field(
        description="The advocate a widget token belongs to: its links, stats and referrals."
    )
    async def me(self, info: Info) -> AdvocateType:
        advocate_id = require_widget(info.context)
        selected = selected_names(info)
        if "links" not in selected:
            return AdvocateType.from_model(await read_advocate(info.context.session, advocate_id))
        # The widget's usual load: the advocate, its links and their stats in one statement,
        # with its figures, rewards and open asks when the query asks (widget.js does), handed
        # to the nested fields with the objects (they would otherwise run a statement each).
        session = info.context.session
        if selected.isdisjoint(WIDGET_EXTRAS):
            found = await advocate_with_links(session, advocate_id)
            return AdvocateType.from_model(found.advocate, links=_links(found))
        view = await widget_view(session, advocate_id)
        return AdvocateType.from_model(
            view.found.advocate,
            links=_links(view.found),
            referral_count=view.referral_count,
            points=view.points,
            rewards=view.rewards,
            open_asks=view.open_asks,
            referral_prompt=view.referral_prompt,
        )

    @strawberry.field(
        description="One advocate by id or by the CRM's external id (a widget token may read "
        "only its own)."
    )
    async def advocate(
        self, info: Info, id: strawberry.ID | None = None, external_id: str | None = None
    ) -> AdvocateType:
        if (id is None) == (external_id is None):
            raise ValidationFailed("give either id or externalId", field="id")
        session = info.context.session
        if id is not None:
            advocate_id = decode_id(id, "Advocate")
            require_advocate_access(info.context, advocate_id)
            return AdvocateType.from_model(await get_advocate(session, advocate_id))
        require_authenticated(info.context)
        assert external_id is not None
        try:
            advocate = await get_advocate_by_external_id(session, external_id)
        except NotFound:
            conceal_absence(info.context)
            raise
        require_advocate_access(info.context, advocate.id)
        return AdvocateType.from_model(advocate)
