"""``node(id:)`` and ``nodes(ids:)``: any object by its opaque global id (Relay).

Each type is read with the rights its own query has: ``Program``, ``Reward`` and the rest need
a read-scoped key, the webhook types an admin key; an advocate's widget token may read its own
``Advocate``, ``ReferralLink`` and ``Referral`` (friends' details hidden, as everywhere) and no
other type. An object that does not exist, or that belongs to another advocate when a widget
token asks, is ``null``: the answer never tells a widget that someone else's object exists.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import strawberry

from vouch.api.context import Context, Info, WidgetPrincipal
from vouch.api.ids import split_id
from vouch.api.pagination import MAX_PAGE_SIZE
from vouch.api.permissions import require_authenticated, require_scope
from vouch.api.types.advocate import AdvocateType
from vouch.api.types.ask import AdvocacyActionType, AskType
from vouch.api.types.chain import AttributionDecisionType
from vouch.api.types.conversion import ConversionType
from vouch.api.types.experiment import ExperimentType
from vouch.api.types.integration import IntegrationEventType
from vouch.api.types.link import ReferralLinkType
from vouch.api.types.node import Node
from vouch.api.types.opportunity import OpportunityType
from vouch.api.types.program import ProgramType, RewardRuleType
from vouch.api.types.referral import OfferRedemptionType, ReferralType
from vouch.api.types.revenue import RevenueEventType
from vouch.api.types.reward import RewardType
from vouch.api.types.signal import SignalType
from vouch.api.types.webhook import WebhookDeliveryType, WebhookEndpointType
from vouch.attribution.nodes import rows_by_ids
from vouch.core.errors import ValidationFailed
from vouch.models import (
    AdvocacyAction,
    Advocate,
    Ask,
    AttributionDecision,
    Conversion,
    Experiment,
    IntegrationEvent,
    OfferRedemption,
    Opportunity,
    Program,
    Referral,
    ReferralLink,
    RevenueEvent,
    Reward,
    RewardRule,
    Signal,
    WebhookDelivery,
    WebhookEndpoint,
)
from vouch.models.base import Base
from vouch.models.enums import Scope


@dataclass(frozen=True, slots=True)
class NodeKind:
    model: type[Base]
    build: Callable[[Any, Context], Any]
    scope: Scope = Scope.READ
    # The advocate a row belongs to, for the types a widget token may read; None: keys only.
    owner: Callable[[Any], int] | None = None


def _referral(m: Referral, ctx: Context) -> ReferralType:
    return ReferralType.from_model(
        m, for_widget=isinstance(ctx.principal, WidgetPrincipal), ctx=ctx
    )


KINDS: dict[str, NodeKind] = {
    "AdvocacyAction": NodeKind(AdvocacyAction, lambda m, _: AdvocacyActionType.from_model(m)),
    "Advocate": NodeKind(Advocate, lambda m, _: AdvocateType.from_model(m), owner=lambda m: m.id),
    "Ask": NodeKind(Ask, lambda m, _: AskType.from_model(m)),
    "AttributionDecision": NodeKind(
        AttributionDecision, lambda m, _: AttributionDecisionType.from_model(m)
    ),
    "Conversion": NodeKind(Conversion, lambda m, _: ConversionType.from_model(m)),
    "Experiment": NodeKind(Experiment, lambda m, _: ExperimentType.from_model(m)),
    "IntegrationEvent": NodeKind(
        IntegrationEvent, lambda m, _: IntegrationEventType.from_model(m), scope=Scope.ADMIN
    ),
    "OfferRedemption": NodeKind(
        OfferRedemption, lambda m, _: OfferRedemptionType.from_model(m, reveal_code=True)
    ),
    "Opportunity": NodeKind(Opportunity, lambda m, _: OpportunityType.from_model(m)),
    "Program": NodeKind(Program, lambda m, _: ProgramType.from_model(m)),
    "Referral": NodeKind(Referral, _referral, owner=lambda m: m.advocate_id),
    "ReferralLink": NodeKind(
        ReferralLink, lambda m, _: ReferralLinkType.from_model(m), owner=lambda m: m.advocate_id
    ),
    "RevenueEvent": NodeKind(RevenueEvent, lambda m, _: RevenueEventType.from_model(m)),
    "Reward": NodeKind(Reward, lambda m, _: RewardType.from_model(m)),
    "RewardRule": NodeKind(RewardRule, lambda m, _: RewardRuleType.from_model(m)),
    "Signal": NodeKind(Signal, lambda m, _: SignalType.from_model(m)),
    "WebhookDelivery": NodeKind(
        WebhookDelivery, lambda m, _: WebhookDeliveryType.from_model(m), scope=Scope.ADMIN
    ),
    "WebhookEndpoint": NodeKind(
        WebhookEndpoint, lambda m, _: WebhookEndpointType.from_model(m), scope=Scope.ADMIN
    ),
}


def _parse(value: str, field: str) -> tuple[str, int]:
    type_name, pk = split_id(value, field=field)
    if type_name not in KINDS:
        raise ValidationFailed("not a valid id", field=field)
    return type_name, pk


def _check(ctx: Context, kind: NodeKind) -> None:
    """Scope errors are errors (as the type's own query gives them); ownership is checked per
    row."""
    if isinstance(ctx.principal, WidgetPrincipal) and kind.owner is not None:
        return
    require_scope(ctx, kind.scope)


async def resolve_nodes(ctx: Context, wanted: Sequence[tuple[str, int]]) -> list[Any]:
    """The objects for (type, id) pairs, in order; None where missing or not the caller's."""
    require_authenticated(ctx)
    by_type: dict[str, list[int]] = defaultdict(list)
    for type_name, pk in wanted:
        by_type[type_name].append(pk)
    found: dict[tuple[str, int], Any] = {}
    widget = ctx.principal if isinstance(ctx.principal, WidgetPrincipal) else None
    for type_name, pks in by_type.items():
        kind = KINDS[type_name]
        _check(ctx, kind)
        for pk, row in (await rows_by_ids(ctx.session, kind.model, pks)).items():
            if widget and kind.owner and kind.owner(row) != widget.advocate_id:
                continue
            found[(type_name, pk)] = kind.build(row, ctx)
    return [found.get(key) for key in wanted]


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="Any object by its global id (Relay), or null when it does not exist or "
        "belongs to another advocate (widget tokens). Each type needs the rights of its own "
        "query: read scope, admin for webhook types; a widget token reads its own Advocate, "
        "ReferralLink and Referral."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        [found] = await resolve_nodes(info.context, [_parse(id, "id")])
        return found  # type: ignore[no-any-return]

    @strawberry.field(
        description=f"Objects by global id, in the order given (at most {MAX_PAGE_SIZE}); "
        "null where `node(id:)` would be null."
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_PAGE_SIZE:
            raise ValidationFailed(f"at most {MAX_PAGE_SIZE} ids", field="ids")
        wanted = [_parse(value, f"ids.{i}") for i, value in enumerate(ids)]
        return await resolve_nodes(info.context, wanted)
