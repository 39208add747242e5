"""The schema: merged query and mutation roots, executed through ``api.execution``.

Add a noun by writing ``api/queries/<noun>.py`` (and ``api/mutations/<verb>_<noun>.py``) and
listing its class below.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql import (
    ASTValidationRule,
    GraphQLError,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import Schema
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import (
    DEFAULT_ALLOWED_OPERATION_TYPES,
    StrawberryGraphQLCoreExecutionContext,
)
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from vouch.api import speed
from vouch.api.execution import (
    DocumentCache,
    execute_operation,
    log_errors,
)
from vouch.api.limits import operation_limits_rule
from vouch.api.mutations.actions import ActionMutations
from vouch.api.mutations.advocacy import TierMutations
from vouch.api.mutations.advocates import AdvocateMutations
from vouch.api.mutations.asks import AskMutations
from vouch.api.mutations.conversions import RecordConversionMutation
from vouch.api.mutations.experiments import ExperimentMutations
from vouch.api.mutations.links import LinkMutations
from vouch.api.mutations.offers import RedeemOfferMutation
from vouch.api.mutations.opportunities import OpportunityMutations
from vouch.api.mutations.programs import ProgramMutations
from vouch.api.mutations.referral_lifecycle import ReferralLifecycleMutations
from vouch.api.mutations.referrals import ReferralMutations
from vouch.api.mutations.reservations import ReservationMutations
from vouch.api.mutations.revenue import RevenueMutations
from vouch.api.mutations.rewards import RewardMutations
from vouch.api.mutations.share_events import ShareEventMutations
from vouch.api.mutations.signals import SignalMutations
from vouch.api.mutations.webhooks import WebhookMutations
from vouch.api.queries.advocacy import AdvocacyQueries
from vouch.api.queries.advocates import AdvocateQueries
from vouch.api.queries.backtests import BacktestQueries
from vouch.api.queries.chain import ChainQueries
from vouch.api.queries.experiments import ExperimentQueries
from vouch.api.queries.integrations import IntegrationQueries
from vouch.api.queries.jobs import JobQueries
from vouch.api.queries.links import LinkQueries
from vouch.api.queries.moderation import ModerationQueries
from vouch.api.queries.node import NodeQueries
from vouch.api.queries.opportunities import OpportunityQueries
from vouch.api.queries.programs import ProgramQueries
from vouch.api.queries.referrals import ReferralQueries
from vouch.api.queries.reports import ReportQueries
from vouch.api.queries.rewards import RewardQueries
from vouch.api.queries.webhooks import WebhookQueries
from vouch.api.scalars import SCALAR_OVERRIDES

MAX_DEPTH = 10
MAX_ALIASES = 20
MAX_TOKENS = 2_000
MAX_FIELDS = 1_000  # fields selected once every fragment is expanded

# Linear in the document, unlike strawberry's limiters (see api/limits.py: fragment bombs).
LIMITS_RULE = operation_limits_rule(
    max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES, max_fields=MAX_FIELDS
)

QUERY_CLASSES: tuple[type, ...] = (
    NodeQueries,
    ProgramQueries,
    AdvocateQueries,
    LinkQueries,
    ReferralQueries,
    RewardQueries,
    ReportQueries,
    ChainQueries,
    ModerationQueries,
    WebhookQueries,
    AdvocacyQueries,
    ExperimentQueries,
    BacktestQueries,
    JobQueries,
    OpportunityQueries,
    IntegrationQueries,
)
MUTATION_CLASSES: tuple[type, ...] = (
    ProgramMutations,
    AdvocateMutations,
    LinkMutations,
    ReferralMutations,
    RedeemOfferMutation,
    RecordConversionMutation,
    ShareEventMutations,
    OpportunityMutations,
    RevenueMutations,
    ReferralLifecycleMutations,
    RewardMutations,
    WebhookMutations,
    SignalMutations,
    TierMutations,
    AskMutations,
    ReservationMutations,
    ActionMutations,
    ExperimentMutations,
)

Query = merge_types("Query", QUERY_CLASSES)
Mutation = merge_types("Mutation", MUTATION_CLASSES) if MUTATION_CLASSES else None


class VouchSchema(Schema):
    """Strawberry's schema, executing through ``api.execution``'s fixed pipeline."""

    def __init__(self, *args: Any, production: bool, **kwargs: Any) -> None:
        if kwargs.get("extensions"):
            # execute() below replaces strawberry's pipeline, so its extensions would never run:
            # a MaskErrors() added as strawberry's docs say would silently do nothing.
            raise TypeError(
                "VouchSchema does not run strawberry schema extensions; put the behaviour in "
                "api.execution's pipeline (see its module docstring)"
            )
        super().__init__(*args, **kwargs)
        self.production = production
        rules: list[type[ASTValidationRule]] = [LIMITS_RULE]
        if production:
            rules.append(NoSchemaIntrospectionCustomRule)
        self.documents = DocumentCache(
            self._schema, rules, max_tokens=MAX_TOKENS, hide_suggestions=production
        )

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        return await execute_operation(
            self,
            self.documents,
            query=query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=(
                DEFAULT_ALLOWED_OPERATION_TYPES
                if allowed_operation_types is None
                else allowed_operation_types
            ),
            operation_extensions=operation_extensions,
            production=self.production,
        )

    def execute_sync(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """Refused: Vouch's resolvers are asynchronous and its limits live in ``execute``."""
        raise NotImplementedError("Vouch executes GraphQL asynchronously: use execute()")

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors, getattr(execution_context, "context", None))


def build_schema(*, production: bool, fast: bool | frozenset[str] = True) -> Schema:
    """The schema; ``fast`` (``VOUCH_GRAPHQL_FAST_PATH``, or a set of ``api.speed`` piece
    names) installs ``api.speed``'s pieces."""
    on = speed.pieces(fast) if isinstance(fast, bool) else fast
    schema = VouchSchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(disable_field_suggestions=production),
        production=production,
        scalar_overrides=SCALAR_OVERRIDES,  # type: ignore[arg-type]
        execution_context_class=(
            speed.VouchExecutionContext
            if speed.LEAF_PATH in on
            else StrawberryGraphQLCoreExecutionContext
        ),
    )
    speed.install(schema, on)
    return schema


def export_sdl() -> str:
    """The SDL as committed in ``api/schema.graphql``."""
    return build_schema(production=False).as_str() + "\n"
