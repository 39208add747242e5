from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

import strawberry

from vouch.api.context import Context, Info
from vouch.api.ids import encode_id
from vouch.api.pagination import Connection, Edge, PageArgs, encode_cursor, page_info
from vouch.api.permissions import NotAuthorized, is_widget, require_scope
from vouch.api.selection import selected_names
from vouch.api.types.enums import ModerationState, ReferralSource, ReferralStatus
from vouch.api.types.node import Node
from vouch.api.types.opportunity import OpportunityType
from vouch.api.types.program import ProgramType
from vouch.api.types.revenue import RevenueEventType
from vouch.api.types.reward import RewardType
from vouch.api.types.rows import RowBacked, computed_fields
from vouch.attribution.referrals import PageParts, ReferralFilter, list_referrals
from vouch.attribution.reward_reads import rewards_by_referrals
from vouch.models import OfferRedemption, Referral
from vouch.models.enums import Scope
from vouch.models.snapshots import (
    AdvocateSnapshot,
    OfferRedemptionSnapshot,
    ReferralLinkSnapshot,
    ReferralSnapshot,
    RewardSnapshot,
)

NOT_LOADED: Any = object()

if TYPE_CHECKING:
    from vouch.api.types.advocate import AdvocateType
    from vouch.api.types.link import ReferralLinkType


@strawberry.type(
    name="OfferRedemption", description="The referred friend's offer: issued once, redeemed once."
)
class OfferRedemptionType(Node, RowBacked):
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
    def from_model(cls, m: OfferRedemptionSnapshot, *, reveal_code: bool) -> Self:
        """``reveal_code`` False (widgets): the code and who redeemed it stay hidden."""
        return cls.lazy(_m=m, _reveal=reveal_code)


computed_fields(
    OfferRedemptionType,
    {
        "id": lambda o: strawberry.ID(encode_id("OfferRedemption", o._m.id)),
        "referral_id": lambda o: strawberry.ID(encode_id("Referral", o._m.referral_id)),
        "redeemed_by": lambda o: o._m.redeemed_by if o._reveal else None,
        "code": lambda o: o._m.code if o._reveal else None,
        "issued_at": lambda o: o._m.issued_at,
        "expires_at": lambda o: o._m.expires_at,
        "redeemed_at": lambda o: o._m.redeemed_at,
        "redeemed": lambda o: o._m.redeemed_at is not None,
        "order_ref": lambda o: o._m.order_ref if o._reveal else None,
    },
)


@strawberry.type(name="Referral", description="A referred person attributed to an advocate.")
class ReferralType(Node, RowBacked):
    db_id: strawberry.Private[int]
    advocate_db_id: strawberry.Private[int]
    program_db_id: strawberry.Private[int]
    link_db_id: strawberry.Private[int | None]
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    status: ReferralStatus = strawberry.field(
        description="lead, qualified, opportunity, won, lost, churned, refunded or rejected."
    )
    source: ReferralSource = strawberry.field(description="How the referral reached Vouch.")
    channel: str | None = strawberry.field(
        description="The channel of the touch that won attribution: its click's ?ch=, else the "
        "link's channel. Pipeline by channel groups by it (docs/REPORTS.md#channel)."
    )
    flags: list[str] = strawberry.field(
        description="Fraud signals: self_referral, duplicate, velocity, disposable_email, ...;"
        " empty for widget tokens."
    )
    flagged: bool = strawberry.field(
        description="At least one fraud flag is set; false for widget tokens."
    )
    moderation: ModerationState = strawberry.field(
        description="Fraud review state; widget tokens see only clear or rejected."
    )
    moderation_reason: str | None = strawberry.field(
        description="Why it was held or rejected; null for widget tokens."
    )
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
    advocate: Annotated[AdvocateType, strawberry.lazy("vouch.api.types.advocate")] = (
        strawberry.field(description="The advocate credited with the referral.")
    )
    link: Annotated[ReferralLinkType, strawberry.lazy("vouch.api.types.link")] | None = (
        strawberry.field(description="The link the friend came through; null for manual referrals.")
    )
    offer_redemption: OfferRedemptionType | None = strawberry.field(
        description="The friend's offer redemption, once issued."
    )

    @strawberry.field(
        description="The 100 most recent CRM opportunities sourced by this referral, oldest "
        "first (read scope); all of them: `opportunities(filter: {referralId})`."
    )
    async def opportunities(self, info: Info) -> list[OpportunityType]:
        require_scope(info.context, Scope.READ)
        rows = await info.context.loaders.opportunities_of_referral.load(self.db_id)
        return [OpportunityType.from_model(o) for o in rows]

    @strawberry.field(
        description="The 100 most recent revenue events of this referral, refunds included, "
        "oldest first (read scope); the revenue reports count all of them."
    )
    async def revenue(self, info: Info) -> list[RevenueEventType]:
        require_scope(info.context, Scope.READ)
        rows = await info.context.loaders.revenue_of_referral.load(self.db_id)
        return [RevenueEventType.from_model(r) for r in rows]

    # A plain field like the nested objects above: a resolver per referral would cost more than
    # loading the whole page's rewards (one batched statement, see _load_rewards).
    rewards: list[RewardType] = strawberry.field(
        description="Both sides' rewards for this referral (read scope)."
    )

    @strawberry.field(description="The program.")
    async def program(self, info: Info) -> ProgramType:
        program = await info.context.loaders.program.load(self.program_db_id)
        assert program is not None
        return ProgramType.from_model(program)

    @classmethod
    def from_model(
        cls,
        m: ReferralSnapshot,
        *,
        advocate: AdvocateSnapshot | None = None,
        link: ReferralLinkSnapshot | None = None,
        redemption: Any = NOT_LOADED,
        rewards: list[RewardSnapshot] | None = None,
        for_widget: bool = False,
        ctx: Context | None = None,
    ) -> Self:
        """``advocate``, ``link``, ``redemption`` (None = has none) and ``rewards`` when already
        loaded; otherwise they are loaded through ``ctx``'s dataloaders if the query asks.
        ``for_widget`` hides the friend's contact details from the advocate's widget.
        Fields are computed from ``m`` when first read (see ``api.types.rows``)."""
        return cls.lazy(
            _m=m,
            _advocate=advocate,
            _link=link,
            _redemption=redemption,
            _rewards=rewards,
            # a widget's view whatever the caller passed: the request decides, not the path
            _for_widget=for_widget or (ctx is not None and is_widget(ctx)),
            _ctx=ctx,
        )


@functools.cache
def _advocate_type() -> type[AdvocateType]:
    """AdvocateType, imported once it exists (api.types.advocate imports this module)."""
    from vouch.api.types.advocate import AdvocateType

    return AdvocateType


@functools.cache
def _link_type() -> type[ReferralLinkType]:
    from vouch.api.types.link import ReferralLinkType

    return ReferralLinkType


def _nested_advocate(o: Any) -> Any:
    # An import statement here would run on every referral of a page.
    if o._advocate is not None:
        return _advocate_type().from_model(o._advocate)
    return _Deferred(_load_advocate, o._ctx, o._m.advocate_id)


def _nested_link(o: Any) -> Any:
    if o._link is not None:
        return _link_type().from_model(o._link)
    if o._m.link_id is not None:
        return _Deferred(_load_link, o._ctx, o._m.link_id)
    return None


def _nested_redemption(o: Any) -> Any:
    if o._redemption is NOT_LOADED:
        return _Deferred(_load_redemption, o._ctx, o._m.id, not o._for_widget)
    return _redemption(o._redemption, reveal_code=not o._for_widget)


def _nested_rewards(o: Any) -> Any:
    # The scope is checked here, whichever way the rewards arrive: a list page after a cursor
    # preloads them for a widget token too (Advocate.referrals), and it must not see them.
    _require_read(o._ctx)
    if o._rewards is not None:
        return [RewardType.from_model(r) for r in o._rewards]
    return _Deferred(_load_rewards, o._ctx, o._m.id)


def _require_read(ctx: Context | None) -> None:
    """The read scope of the request the referral was built for; none known: refused."""
    if ctx is None:
        raise NotAuthorized("this field needs the request's credentials")
    require_scope(ctx, Scope.READ)


def _moderation(state: str, for_widget: bool) -> ModerationState:
    if for_widget and state != ModerationState.REJECTED:
        return ModerationState.CLEAR
    return ModerationState(state)


def _first_name(name: str | None) -> str | None:
    parts = name.split() if name else None
    return parts[0] if parts else None


computed_fields(
    ReferralType,
    {
        "rewards": _nested_rewards,
        "advocate": _nested_advocate,
        "link": _nested_link,
        "offer_redemption": _nested_redemption,
        "email": lambda o: None if o._for_widget else o._m.email,
        "name": lambda o: _first_name(o._m.name) if o._for_widget else o._m.name,
        "company": lambda o: None if o._for_widget else o._m.company,
        "db_id": lambda o: o._m.id,
        "advocate_db_id": lambda o: o._m.advocate_id,
        "program_db_id": lambda o: o._m.program_id,
        "link_db_id": lambda o: o._m.link_id,
        "id": lambda o: strawberry.ID(encode_id("Referral", o._m.id)),
        "status": lambda o: ReferralStatus(o._m.status),
        "source": lambda o: ReferralSource(o._m.source),
        "channel": lambda o: o._m.channel,
        # A widget (the advocate, who may be the fraudster) never learns which rule flagged a
        # referral, nor that it is held: only a rejection, which its status shows anyway.
        "flags": lambda o: [] if o._for_widget else list(o._m.flags or []),
        "flagged": lambda o: False if o._for_widget else bool(o._m.flags),
        "moderation": lambda o: _moderation(o._m.moderation, o._for_widget),
        "moderation_reason": lambda o: None if o._for_widget else o._m.moderation_reason,
        "consent": lambda o: o._m.consent,
        "erased": lambda o: o._m.erased_at is not None,
        "created_at": lambda o: o._m.created_at,
        "updated_at": lambda o: o._m.updated_at,
    },
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
    from vouch.api.types.advocate import AdvocateType

    advocate = await ctx.loaders.advocate.load(advocate_id)
    assert advocate is not None
    return AdvocateType.from_model(advocate)


async def _load_link(ctx: Context, link_id: int) -> ReferralLinkType | None:
    from vouch.api.types.link import ReferralLinkType

    link = await ctx.loaders.link.load(link_id)
    return ReferralLinkType.from_model(link) if link is not None else None


async def _load_rewards(ctx: Context, referral_id: int) -> list[RewardType]:
    return [
        RewardType.from_model(r) for r in await ctx.loaders.rewards_of_referral.load(referral_id)
    ]


async def _load_redemption(
    ctx: Context, referral_id: int, reveal_code: bool
) -> OfferRedemptionType | None:
    return _redemption(await ctx.loaders.redemption.load(referral_id), reveal_code=reveal_code)


def _redemption(row: OfferRedemption | None, *, reveal_code: bool) -> OfferRedemptionType | None:
    return None if row is None else OfferRedemptionType.from_model(row, reveal_code=reveal_code)


async def referral_connection(
    info: Info, flt: ReferralFilter, args: PageArgs, *, newest_first: bool = True
) -> Connection[ReferralType]:
    """A page of referrals as a connection: the advocate, and the link and offer redemption
    when the query shows them, come in the page statement; the page's rewards, when shown, in
    one more (shared by ``Query.referrals``, ``Advocate.referrals`` and
    ``ReferralLink.referrals``)."""
    shown = selected_names(info, "nodes") | selected_names(info, "edges", "node")
    parts = PageParts(link="link" in shown, redemption="offerRedemption" in shown)
    page = await list_referrals(
        info.context.session, flt, **args.window(), newest_first=newest_first, parts=parts
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
            cursor=encode_cursor(args.connection, row.referral.id),
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
        page_info=page_info(args, edges, has_next=page.has_next, has_previous=page.has_previous),
        total_count=page.total,
    )


async def nested_referrals(
    info: Info,
    args: PageArgs,
    flt: ReferralFilter,
    latest: Callable[[int], Awaitable[list[Referral]]],
    count: Callable[[], Awaitable[int]],
) -> Connection[ReferralType]:
    """One parent's referrals, newest first. A first page goes through the request's batched
    loaders (``latest(limit)``: one statement for every parent of a page; ``count()`` one more,
    only when ``totalCount`` is selected); a page after a cursor or from the end is read by the
    list query, two statements per parent."""
    if args.after is not None or args.before is not None or args.from_end:
        return await referral_connection(info, flt, args)
    rows = await latest(args.size + 1)
    widget = is_widget(info.context)
    edges = [
        Edge(
            cursor=encode_cursor(args.connection, r.id),
            node=ReferralType.from_model(r, for_widget=widget, ctx=info.context),
        )
        for r in rows[: args.size]
    ]
    # totalCount is only read when the query selects it (GraphQL returns nothing else).
    total = await count() if "totalCount" in selected_names(info) else len(edges)
    return Connection(
        edges=edges,
        page_info=page_info(args, edges, has_next=len(rows) > args.size, has_previous=False),
        total_count=total,
    )
